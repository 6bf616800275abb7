"""Route groups of the gateway, one mixin per area (GatewayService inherits them all)."""
