"""The web UI served by the gateway: server-rendered pages (Jinja2 + htmx) over the services'
RPCs, behind the cookie session of ``gateway.pages``. ``base`` is the frame (layout, menu,
language, static files); each area of the UI is a mixin module of its own."""
