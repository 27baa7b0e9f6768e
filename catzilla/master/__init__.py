"""The prefork master (supervision, signals, reload): see issue 3. Until it lands,
`catzilla run` serves in one process."""
