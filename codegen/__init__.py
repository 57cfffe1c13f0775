"""The contract generator: schemas/ -> esper.<owner>.contracts + docs/contracts/ (see docs/contracts-workflow.md)."""
