"""The HTTP API (`python -m rag serve`): the same engine and settings as the app, over FastAPI.
`create_app` in rag.api.app builds it; each module here is one concern of it."""
