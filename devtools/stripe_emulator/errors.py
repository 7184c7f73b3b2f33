"""Stripe-shaped API errors.

The official SDK picks its exception class from the HTTP status and `error.type`
(402 -> CardError, 400/404 -> InvalidRequestError or IdempotencyError, 401 ->
AuthenticationError, 5xx -> APIError), so both must match what Stripe sends.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answer: raised anywhere in an operation, rendered once by the app."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error: dict[str, Any] = {"type": type_, "message": message}
        if code is not None:
            self.error["code"] = code
        if param is not None:
            self.error["param"] = param
        self.error.update(extra)

    def body(self) -> dict[str, Any]:
        """The JSON document Stripe returns for this error."""
        return {"error": self.error}


def invalid(message: str, *, code: str | None = None, param: str | None = None) -> ApiError:
    """A 400 `invalid_request_error`, Stripe's answer to anything the caller got wrong."""
    return ApiError(400, "invalid_request_error", message, code=code, param=param)


def missing(param: str) -> ApiError:
    """A required parameter is absent (Stripe words it exactly like this)."""
    return invalid(f"Missing required param: {param}.", code="parameter_missing", param=param)


def no_such(kind: str, object_id: str, param: str, *, status: int = 400) -> ApiError:
    """An id that does not exist: Stripe answers 404 for ids in the path, 400 for parameters."""
    return ApiError(
        status,
        "invalid_request_error",
        f"No such {kind}: '{object_id}'",
        code="resource_missing",
        param=param,
    )


def idempotency_mismatch(key: str, reason: str) -> ApiError:
    """A key reused for another request; Stripe refuses rather than guess which one was meant."""
    return ApiError(
        400,
        "idempotency_error",
        f"Keys for idempotent requests can only be used {reason}. Try using a key other "
        f"than '{key}' if you meant to execute a different request.",
    )


def api_error(status: int, message: str) -> ApiError:
    """A server-side failure (`api_error`); the SDK raises `stripe.APIError` for it."""
    return ApiError(status, "api_error", message)
