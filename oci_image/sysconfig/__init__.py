"""The containers configuration files that registry access reads, parsed without any
network code: ``auth.json`` / docker ``config.json`` credentials and credential helpers
(:mod:`.auth`), ``registries.conf`` v2 with mirrors, rewrites, blocking and short-name
aliases (:mod:`.registries`), and ``certs.d`` TLS settings (:mod:`.certs`).

Everything here follows containers/image's lookup order and file formats, so a machine
configured for skopeo or podman is configured for us.
"""
