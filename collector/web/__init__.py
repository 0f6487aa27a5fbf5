"""The collector's HTTP side: a Flask app (`app.py`; /metrics now, the dashboard next) served by
waitress (`serve.py`)."""
