export TRAKKR_WEBHOOKS_ENCRYPTION_KEY="$(flask webhooks generate-key)" MYAPP_ADMIN_TOKEN=change-me
flask --app myapp run --port 5000 &         # the app and its /webhooks API
until curl -so /dev/null http://127.0.0.1:5000/; do sleep 0.5; done      # wait until the app answers
flask --app myapp webhooks worker &         # delivers: needs Redis (REDIS_URL, default 127.0.0.1:6379)
# Register a webhook (signed by default: the answer holds its whsec_ secret, once).
SECRET=$(curl -s http://127.0.0.1:5000/webhooks \
  -H "Authorization: Bearer change-me" -H "Content-Type: application/json" \
  -d '{"url": "http://127.0.0.1:8000/hooks", "events": ["visibility_changed"],
       "brand_id": "3f2b8c1e-5d4a-4e7b-9c6d-1a2b3c4d5e6f"}' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["signing_secret"])')
TRAKKR_SIGNING_SECRET="$SECRET" flask --app receiver run --port 8000 &
until curl -so /dev/null http://127.0.0.1:8000/; do sleep 0.5; done
# Make an event happen: the receiver prints "verified evt_… Acme's visibility rose 40.2% (41.0 → 57.5)".
curl -s http://127.0.0.1:5000/brands/3f2b8c1e-5d4a-4e7b-9c6d-1a2b3c4d5e6f/scores \
  -H "Content-Type: application/json" -d '{"previous": 41, "current": 57.5}'
