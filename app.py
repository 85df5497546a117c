"""`uvicorn app:app --port 5003` serves the mattekit web app and API from the repo root."""

from mattekit.service import create_app

app = create_app()
