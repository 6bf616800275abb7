"""The manager's pages of the web UI: the desk, clients (list, card, new client), the funnel board
and the calendar — one mixin of ``GatewayService`` made of the area modules:

* ``desk.DeskPages``            ``/desk``, closing and taking tasks
* ``clients_pages.ClientPages`` ``/clients``, ``/clients/new``, ``/clients/<id>`` and its forms,
                                ``/calls/<id>/recording``
* ``funnel.FunnelPages``        ``/funnel`` (board and list), ``/funnel/deals/<id>/move``
* ``calendar.CalendarPages``    ``/calendar``

Shared formatting (money, Moscow time) is in ``manager_common``; templates are under
``gateway/templates/app/manager/``, styles and scripts in ``gateway/static/manager.css``,
``manager.js`` and ``board.js``.
"""

from __future__ import annotations

from .calendar import CalendarPages
from .clients_pages import ClientPages
from .desk import DeskPages
from .funnel import FunnelPages


class ManagerPages(DeskPages, ClientPages, FunnelPages, CalendarPages):
    """All of the manager's pages (see the module docstring)."""
