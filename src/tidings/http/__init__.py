"""The framework's routes (everything but the raw stream and publish, see `tidings.routes`).

- `deps.py`: the service and the credentials a route declares; the auth policy lives on the
  credential dependency, not on a router or a tag.
- `schemas.py`: the bodies taken and answered.
- `user.py`, `publisher.py`, `ops.py`: the user's, the publisher's and the operator's routes.
- `handlers.py`: every error answered as an `ApiError`, credential checks before body errors.
- `openapi.py`: what tidings adds to the generated schema.

A new route goes in the module of whoever calls it, declaring its credential dependency
(`UserDep`, `ChangingUserDep`, `PublisherDep`); a new group of routes is a new router with the
same dependencies, included in `tidings.app.create_app`.
"""
