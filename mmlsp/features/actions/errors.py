"""Why an action gives no result: errors worded for the user, with their LSP codes."""

from __future__ import annotations

from pygls.exceptions import JsonRpcException


class ActionError(JsonRpcException):
    """A reason the action could not produce a result, worded for the user.

    Raised out of a request handler it answers with LSP's RequestFailed error code.
    """

    CODE = -32803  # LSP RequestFailed


class ActionCancelled(ActionError):
    """The user cancelled the work (its progress, or the request): no popup for it."""

    CODE = -32800  # LSP RequestCancelled
