"""The API 3.0 error codes this service answers, one class per wire code (api3-protocol §6).

Every failure a caller can cause is raised as an ApiError subclass; the gateway turns it into the
error envelope in one place. Messages name the offending parameter in backticks.
"""

from __future__ import annotations

from typing import ClassVar


class ApiError(Exception):
    """A failure with a wire code; `message_zh` is used when the caller asked for zh-CN and it is set."""

    code: ClassVar[str] = "InternalError"

    def __init__(self, message: str, message_zh: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.message_zh = message_zh

    def localized(self, language: str) -> str:
        """The message in the caller's language where a translation exists."""
        if language == "zh-CN" and self.message_zh:
            return self.message_zh
        return self.message


class InternalError(ApiError):
    code = "InternalError"

    def __init__(self, message: str = "An internal error has occurred. Retry your request.") -> None:
        super().__init__(message, "内部错误，请重试。")


class UnsupportedProtocol(ApiError):
    code = "UnsupportedProtocol"


class RequestSizeLimitExceeded(ApiError):
    code = "RequestSizeLimitExceeded"


class InvalidParameter(ApiError):
    code = "InvalidParameter"

    @classmethod
    def type_error(cls, name: str) -> InvalidParameter:
        """The wording the real service uses for a value of the wrong type."""
        return cls(f"Parameter `{name}` type error.", f"参数`{name}`类型错误。")


class MissingParameter(ApiError):
    code = "MissingParameter"

    def __init__(self, name: str) -> None:
        super().__init__(f"The request is missing a required parameter `{name}`.", f"缺少必填参数`{name}`。")
        self.name = name


class UnknownParameter(ApiError):
    code = "UnknownParameter"

    def __init__(self, name: str) -> None:
        super().__init__(f"The parameter `{name}` is not recognized.", f"参数`{name}`未定义。")
        self.name = name


class InvalidParameterValue(ApiError):
    code = "InvalidParameterValue"

    @classmethod
    def for_param(cls, name: str, detail: str = "") -> InvalidParameterValue:
        """The standard wording, with an optional detail saying what is accepted."""
        text = f"A value specified in `{name}` is not valid, is unsupported, or cannot be used."
        return cls(f"{text} {detail}".strip())


class PageLimitExceeded(InvalidParameterValue):
    code = "InvalidParameterValue.PageLimitExceeded"


class FilterLimitExceeded(InvalidParameterValue):
    code = "InvalidParameterValue.LimitExceeded"


class InvalidFilter(InvalidParameterValue):
    code = "InvalidParameterValue.InvalidFilter"


class NoSuchVersion(ApiError):
    code = "NoSuchVersion"


class InvalidAction(ApiError):
    code = "InvalidAction"


class UnsupportedOperation(ApiError):
    code = "UnsupportedOperation"

    def __init__(self, action: str) -> None:
        super().__init__(f"The action `{action}` is not supported by this server.")


class UnsupportedRegion(ApiError):
    code = "UnsupportedRegion"


class LimitExceeded(ApiError):
    """A quota (not a rate) is exceeded: a common code, so every action may answer it (api3-protocol §6.1).
    CreateTrainingTask and StartTrainingTask use it for the catalogue's `[limits]` (issue 7 B4)."""

    code = "LimitExceeded"


class RequestLimitExceeded(ApiError):
    code = "RequestLimitExceeded"

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(
            f"Your current request times equals to `{count}` in a second, which exceeds the frequency "
            f"limit `{limit}` for a second. Please reduce the frequency of calls.",
            f"您当前每秒请求 `{count}` 次，超过了每秒频率上限 `{limit}`，请稍后重试。",
        )


class SignatureExpire(ApiError):
    code = "AuthFailure.SignatureExpire"


class NonceReused(SignatureExpire):
    """A v1 request whose (SecretId, Nonce) was already accepted within the timestamp window (issue 7 C7).

    No code names a replay; SignatureExpire does what it needs: the signature can no longer be used, and the
    remedy is the same, sign the request again (with a fresh Nonce, as every SDK draws one per request).
    """

    def __init__(self, nonce: str, window: int) -> None:
        shown = nonce if len(nonce) <= 40 else nonce[:40] + "..."
        super().__init__(
            f"The `Nonce` {shown} was already used with this SecretId within the last {window} s; a signed "
            "request is accepted once. Sign the request again with a new `Nonce`.",
            f"`Nonce` {shown} 已在 {window} 秒内使用过，同一签名请求只接受一次，请使用新的 `Nonce` 重新签名。",
        )


class SignatureFailure(ApiError):
    code = "AuthFailure.SignatureFailure"

    def __init__(self, detail: str = "") -> None:
        text = "The provided credentials could not be validated. Please check your signature is correct."
        super().__init__(f"{text} {detail}".strip(), "请求签名验证失败，请检查您的签名计算是否正确。")


class InvalidAuthorization(ApiError):
    code = "AuthFailure.InvalidAuthorization"

    def __init__(self, detail: str) -> None:
        super().__init__(f"The request `Authorization` header does not conform to tencentcloud standards: {detail}.")


class InvalidSecretId(ApiError):
    code = "AuthFailure.InvalidSecretId"


class SecretIdNotFound(ApiError):
    code = "AuthFailure.SecretIdNotFound"

    def __init__(self) -> None:
        super().__init__(
            "The SecretId is not found, please ensure that your SecretId is correct.",
            "SecretId不存在，请输入正确的密钥。",
        )


class TokenFailure(ApiError):
    code = "AuthFailure.TokenFailure"

    def __init__(self) -> None:
        super().__init__(
            "Token verification failed. Please check your Token is correct.",
            "Token验证失败，请检查Token是否正确。",
        )


class ServiceUnavailable(ApiError):
    code = "ServiceUnavailable"


class ResourceNotFound(ApiError):
    code = "ResourceNotFound"


# -- training-task lifecycle (spec tione-training §4.1-§4.9, §6.3) ------------------------------------------


class BadName(InvalidParameterValue):
    code = "InvalidParameterValue.BadName"


class DuplicateName(InvalidParameterValue):
    code = "InvalidParameterValue.DuplicateName"


class ResourceConfigIllegal(InvalidParameterValue):
    code = "InvalidParameterValue.ResourceConfigIllegal"


class FrameworkVersionNotSupport(InvalidParameterValue):
    code = "InvalidParameterValue.FrameworkVersionNotSupport"


class RDMAConfigIllegal(InvalidParameterValue):
    code = "InvalidParameterValue.RDMAConfigIllegal"


class DataConfigNumLimitExceeded(InvalidParameterValue):
    code = "InvalidParameterValue.DataConfigNumLimitExceeded"


class ParamLengthExceedLimit(InvalidParameterValue):
    code = "InvalidParameterValue.ParamLengthExceedLimit"


class ClsConfigRequired(InvalidParameterValue):
    code = "InvalidParameterValue.ClsConfigRequired"


class DuplicateNameTaskIsCreating(ApiError):
    code = "FailedOperation.DuplicateNameTaskIsCreating"


class ResourceGroupNotFound(ApiError):
    code = "ResourceNotFound.ResourceGroupNotFound"


class ResourceGroupInsufficient(ApiError):
    code = "OperationDenied.ResourceGroupInsufficient"


class BillingStatusResourceInsufficient(ApiError):
    code = "OperationDenied.BillingStatusResourceInsufficient"


class NotAllow(ApiError):
    code = "InternalError.NotAllow"


class UnSubmittedStatusNotAllowStop(ApiError):
    code = "InternalError.UnSubmittedStatusNotAllowStop"


class ContextLimitError(ApiError):
    code = "FailedOperation.ContextLimitError"
