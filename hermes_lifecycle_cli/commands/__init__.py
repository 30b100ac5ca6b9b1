"""One module per command family; each opens the store, calls the library, renders."""
