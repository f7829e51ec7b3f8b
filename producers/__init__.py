"""Source producers: provider extract files and direct emitters to raw event topics."""
