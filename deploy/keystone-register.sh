#!/bin/bash
# deploy/keystone-register.sh: registers nova-guest-api in Keystone with the openstack CLI,
# as the original nova-guest README did, plus the service user the API validates tokens and
# reads Nova and Neutron with. Run it once, with admin credentials loaded (an openrc or
# OS_CLOUD). Idempotent: what exists is left as it is. DRY_RUN=1 prints the commands only.
#
#   PUBLIC_URL=https://guest.example.com:4224 INTERNAL_URL=http://10.0.0.4:4224 \
#   SERVICE_PASSWORD=... deploy/keystone-register.sh
#
# Settings (environment):
#   PUBLIC_URL        the API as tenants reach it (required), e.g. https://guest.example.com:4224
#   INTERNAL_URL      the internal and admin endpoints (default: PUBLIC_URL)
#   ADMIN_URL         the admin endpoint (default: INTERNAL_URL)
#   REGION            RegionOne
#   SERVICE_NAME      nova-guest          SERVICE_TYPE  guest-agent (the original's)
#   SERVICE_USER      nova-guest          SERVICE_PASSWORD (required unless the user exists)
#   SERVICE_PROJECT   service             SERVICE_DOMAIN Default (of the user and the project)
#
# The user gets the `service` role on the service project: Keystone then lets it validate
# other users' tokens (identity:validate_token allows rule:service_role). Reading any
# project's server (with its compute host) and ports needs Nova and Neutron policy too: this
# script prints the rules to add; it cannot change those services' policy files.
# Not run by CI or the tests (no Keystone of a real cloud here).
set -euo pipefail

: "${PUBLIC_URL:?set PUBLIC_URL, e.g. https://guest.example.com:4224}"
INTERNAL_URL=${INTERNAL_URL:-$PUBLIC_URL}
ADMIN_URL=${ADMIN_URL:-$INTERNAL_URL}
REGION=${REGION:-RegionOne}
SERVICE_NAME=${SERVICE_NAME:-nova-guest}
SERVICE_TYPE=${SERVICE_TYPE:-guest-agent}
SERVICE_USER=${SERVICE_USER:-nova-guest}
SERVICE_PROJECT=${SERVICE_PROJECT:-service}
SERVICE_DOMAIN=${SERVICE_DOMAIN:-Default}

run() {
    if [ -n "${DRY_RUN:-}" ]; then
        printf '%q ' "$@" | sed 's/ $//'
        echo
    else
        "$@"
    fi
}
exists() { [ -z "${DRY_RUN:-}" ] && "$@" >/dev/null 2>&1; }

# The service and its three endpoints; %(tenant_id)s is filled in by clients from the token.
if ! exists openstack service show "$SERVICE_NAME"; then
    run openstack service create --name "$SERVICE_NAME" \
        --description "Nova guest agent integration" "$SERVICE_TYPE"
fi
for pair in "public $PUBLIC_URL" "internal $INTERNAL_URL" "admin $ADMIN_URL"; do
    interface=${pair%% *} url=${pair#* }
    if [ -n "${DRY_RUN:-}" ] || [ -z "$(openstack endpoint list --service "$SERVICE_NAME" \
        --interface "$interface" --region "$REGION" -f value -c ID)" ]; then
        run openstack endpoint create --region "$REGION" \
            "$SERVICE_NAME" "$interface" "${url%/}/v1/%(tenant_id)s"
    fi
done

# The service user ([keystone_authtoken] username/password/project_name in nova-guest.conf).
if ! exists openstack user show --domain "$SERVICE_DOMAIN" "$SERVICE_USER"; then
    : "${SERVICE_PASSWORD:?set SERVICE_PASSWORD for the new user $SERVICE_USER}"
    password=$SERVICE_PASSWORD
    [ -n "${DRY_RUN:-}" ] && password='<SERVICE_PASSWORD>'
    run openstack user create --domain "$SERVICE_DOMAIN" --password "$password" \
        --description "nova-guest-api service user" "$SERVICE_USER"
fi
run openstack role add --project "$SERVICE_PROJECT" --project-domain "$SERVICE_DOMAIN" \
    --user "$SERVICE_USER" --user-domain "$SERVICE_DOMAIN" service

cat <<EOF

Keystone is done. Two more things, by hand, on the controllers:

1. Nova (/etc/nova/policy.yaml; nova-api reads it again by itself): nova-guest-api shows any
   project's server as this user, with OS-EXT-SRV-ATTR:host and :instance_name. Add
   " or role:service" to these two rules as your release has them
   (oslopolicy-sample-generator --namespace nova prints the defaults); with the defaults of
   recent releases they read:

     "os_compute_api:servers:show": "rule:project_reader_or_admin or role:service"
     "os_compute_api:os-extended-server-attributes": "rule:context_is_admin or role:service"

2. Neutron (/etc/neutron/policy.yaml): it lists the instance's ports
   (GET /v2.0/ports?device_id=...&tenant_id=...) and reads their networks and subnets. Recent
   releases already grant role:service on ports ("rule:service_api"); where yours does not,
   add " or role:service" to get_port, get_network and get_subnet
   (oslopolicy-sample-generator --namespace neutron prints the defaults).

The role:service grants reach every user with the service role (nova, neutron, ...). To grant
nova-guest alone, create a role of its own (openstack role create guest-agent-reader; add it
like the service role above) and write that role's name in the rules instead.

Then, in /etc/nova-guest/nova-guest.conf on the controllers:

   [keystone_authtoken]
   auth_url = <Keystone's internal URL>/v3
   username = $SERVICE_USER
   password = <SERVICE_PASSWORD>
   project_name = $SERVICE_PROJECT
   user_domain_name = $SERVICE_DOMAIN
   project_domain_name = $SERVICE_DOMAIN
EOF
