"""Client base routes of the gateway (/api/v1/clients...): a mixin of ``GatewayService``."""


class ClientRoutes:
    pass
