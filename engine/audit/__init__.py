"""Views of what runs did, from the ledger and the models each run pinned (`engine show`, `engine explain`)."""
