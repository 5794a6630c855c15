"""Running the API: the `mlapi` command, gunicorn's configuration and worker, start-up checks
and the access log. The top layer: nothing imports it."""
