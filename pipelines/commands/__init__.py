"""Command modules of the `vstw` CLI; each exposes `register(app)`. Shared helpers live in _util."""
