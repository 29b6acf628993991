"""The contract catalog: every API and version, with links to its documents."""
