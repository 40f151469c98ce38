"""The service from the outside: the Python client, the `clr-service` command, the export to TensorBoard and MLflow,
and the supervisor that runs the whole stack on one machine. It speaks to the API over HTTP and imports none of
its routes."""
