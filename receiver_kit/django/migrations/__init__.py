"""Migrations of the ``receiver_kit`` Django app."""
