"""netlab: real networks and real processes for peerdist's multi-device tests and demo.

* servers: nginx (the CDN), PKI, scripted misbehaving servers, an HTTP proxy.
* agent:   pd-agent processes (config, control-socket client, lifecycle).
* lab:     a fleet of offices built from Linux network namespaces (root), or on loopback.
"""
