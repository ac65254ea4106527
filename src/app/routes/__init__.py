"""HTTP routes: thin shells that parse, call the plan and the store, and render."""
