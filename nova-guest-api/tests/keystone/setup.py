"""Fills a freshly bootstrapped Keystone with what the nova-guest-api tests use, over plain
HTTP (the `openstack` CLI costs seconds per call). Prints the ids and passwords as JSON.

    setup.py KEYSTONE_URL ADMIN_PASSWORD NOVA_URL NEUTRON_URL API_URL

- projects alpha, beta and service;
- alice: member of alpha (default project alpha); bob: member of beta; rita: reader of
  alpha only; nova-guest: role `service` on the service project;
- catalog: guest-agent (ours, `API_URL/v1/%(tenant_id)s`), compute (`NOVA_URL/v2.1/
  %(tenant_id)s`, the legacy form with the project id) and network (`NEUTRON_URL`, without
  /v2.0), each with public, internal and admin endpoints in RegionOne.
"""

import json
import secrets
import sys
import time
import urllib.error
import urllib.request

base, admin_password, nova, neutron, api = sys.argv[1:6]


def call(method, path, body=None, token=None, expect=(200, 201, 204)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, dict(r.headers), (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        if e.code in expect:
            return e.code, dict(e.headers), None
        raise SystemExit(f"{method} {path}: {e.code} {e.read()[:300]!r}")


# Wait for gunicorn.
deadline = time.time() + 120
while True:
    try:
        call("GET", "/v3")
        break
    except (urllib.error.URLError, ConnectionError, OSError):
        if time.time() > deadline:
            raise SystemExit("keystone did not come up")
        time.sleep(0.2)

_, headers, _ = call("POST", "/v3/auth/tokens", {"auth": {
    "identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": admin_password}}},
    "scope": {"system": {"all": True}}}})
admin = headers["X-Subject-Token"]

roles = {r["name"]: r["id"] for r in call("GET", "/v3/roles", token=admin)[2]["roles"]}
if "service" not in roles:
    roles["service"] = call("POST", "/v3/roles", {"role": {"name": "service"}}, admin)[2]["role"]["id"]

projects = {}
for name in ("alpha", "beta", "service"):
    found = call("GET", f"/v3/projects?name={name}", token=admin)[2]["projects"]
    if found:
        projects[name] = found[0]["id"]
    else:
        projects[name] = call("POST", "/v3/projects", {"project": {
            "name": name, "domain_id": "default"}}, admin)[2]["project"]["id"]

users = {}
for name, project, role in (("alice", "alpha", "member"), ("bob", "beta", "member"),
                            ("rita", "alpha", "reader"), ("nova-guest", "service", "service")):
    password = secrets.token_urlsafe(16)
    uid = call("POST", "/v3/users", {"user": {
        "name": name, "domain_id": "default", "password": password,
        "default_project_id": projects[project]}}, admin)[2]["user"]["id"]
    call("PUT", f"/v3/projects/{projects[project]}/users/{uid}/roles/{roles[role]}", token=admin)
    users[name] = {"id": uid, "password": password, "project": project}

for kind, name, url in (("guest-agent", "nova-guest", api + "/v1/%(tenant_id)s"),
                        ("compute", "nova", nova + "/v2.1/%(tenant_id)s"),
                        ("network", "neutron", neutron)):
    sid = call("POST", "/v3/services", {"service": {"type": kind, "name": name}}, admin)[2]["service"]["id"]
    for interface in ("public", "internal", "admin"):
        call("POST", "/v3/endpoints", {"endpoint": {
            "service_id": sid, "interface": interface, "url": url, "region_id": "RegionOne"}}, admin)

print(json.dumps({"url": base, "admin_password": admin_password, "projects": projects,
                  "users": users}))
