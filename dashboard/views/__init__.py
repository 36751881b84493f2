"""The dashboard's pages, a module per area: overview, jobs, editor (new job), dead letters, keys,
team (members and invitations), tenants (the switcher). Views parse the request, call one
service or selector, and render; every rule lives in the services."""
