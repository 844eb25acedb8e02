print("cache-bench: not built yet")
