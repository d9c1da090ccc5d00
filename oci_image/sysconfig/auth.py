"""Registry credentials: the :class:`Credentials` value, lookup in auth files and
credential helpers, and ``login``/``logout`` edits of auth.json."""

from __future__ import annotations

import attrs

__all__ = ["Credentials"]


@attrs.frozen
class Credentials:
    """A user name and secret for one registry. ``repr`` never shows the secrets.

    ``identity_token`` is an OAuth2 refresh token (auth.json ``identitytoken``); when it is
    set, ``password`` is unused and ``username`` is usually ``"<token>"``.
    """

    username: str
    password: str = attrs.field(default="", repr=False)
    identity_token: str = attrs.field(default="", repr=False)

    @classmethod
    def parse(cls, value: str) -> Credentials:
        """``USER[:PASSWORD]`` as skopeo's ``--creds`` takes it."""
        user, _, password = value.partition(":")
        if not user:
            from ..errors import ConfigError
            raise ConfigError("credentials must be USERNAME[:PASSWORD] with a user name")
        return cls(user, password)
