"""The rule language and engine (pure: readings in, alerts, commands and derived readings out)."""
