"""What a command does end to end, on top of engine, imageio and store: every message goes through
the Reporter protocol, so only the CLI draws."""
