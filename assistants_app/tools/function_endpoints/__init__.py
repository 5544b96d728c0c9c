"""Function tools the engine answers itself by calling an HTTP endpoint staff attached to them
(models.FunctionEndpoint): `call.py` makes the call, `guard.py` decides where it may connect."""
