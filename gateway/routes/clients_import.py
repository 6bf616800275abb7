"""Client import routes of the gateway (/api/v1/clients/import): a mixin of ``GatewayService``."""


class ClientImportRoutes:
    pass
