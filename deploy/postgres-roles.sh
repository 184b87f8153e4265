#!/bin/sh
# Run by the postgres image when it first creates its database (/docker-entrypoint-initdb.d, docker-compose.yml):
# creates the owner and app roles with the passwords from the environment (deploy/postgres-roles.sql).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v owner="${RFR_DB_OWNER:-rfr_owner}" -v owner_password="$RFR_DB_OWNER_PASSWORD" \
  -v app="${RFR_DB_APP:-rfr_app}" -v app_password="$RFR_DB_APP_PASSWORD" \
  -f /rfr/postgres-roles.sql
