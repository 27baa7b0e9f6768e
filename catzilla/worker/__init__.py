"""The worker process: event loop, HTTP protocol, hybrid executor, thread pool."""
