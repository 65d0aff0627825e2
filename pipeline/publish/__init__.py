"""Publishing a run's outputs: worklists, flags, quarantine, run.json, built aside and moved into place; the neutralising writers."""
