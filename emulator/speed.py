"""Patches that make each emulated AWS call cheaper. None changes what a call does or answers: each removes work
that only a real network needs, or that moto and botocore repeat with the same result.

- a request carries a placeholder SigV4 Authorization header with its real access key id (moto checks no
  signature; it reads the key id, for the account and for GetCallerIdentity), not a computed signature (~1.4 ms);
  an S3 request says its payload is unsigned, or streamed with a trailing checksum, as the real signer would;
- the User-Agent header is built once per request, not again with the request's feature ids (no one reads it; ~0.4 ms);
- moto lists a response class's methods once per class, not with ``inspect.getmembers`` for every call (~1 ms).
"""

from __future__ import annotations

import contextlib
import functools
import time
from unittest import mock


@contextlib.contextmanager
def cheaper_calls():
    from botocore.auth import STREAMING_UNSIGNED_PAYLOAD_TRAILER, UNSIGNED_PAYLOAD
    from botocore.crt.auth import CrtS3SigV4Auth, CrtSigV4Auth
    from botocore.exceptions import NoCredentialsError
    from botocore.useragent import UserAgentString
    from moto.core import responses

    signed = CrtSigV4Auth.add_auth
    method_names = functools.cache(responses.method_names_from_class)

    def placeholder_signature(signer, request):
        if type(signer) not in (CrtSigV4Auth, CrtS3SigV4Auth):  # presigned URLs and the like, as botocore has them
            return signed(signer, request)
        credentials = signer.credentials
        if credentials is None:
            raise NoCredentialsError()
        now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        for header in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-SHA256"):  # a retry's
            if header in request.headers:
                del request.headers[header]
        request.headers["X-Amz-Date"] = now
        if type(signer) is CrtS3SigV4Auth:
            streamed = signer._is_streaming_checksum_payload(request)
            request.headers["X-Amz-Content-SHA256"] = STREAMING_UNSIGNED_PAYLOAD_TRAILER if streamed else UNSIGNED_PAYLOAD
        if credentials.token:
            request.headers["X-Amz-Security-Token"] = credentials.token
        scope = f"{credentials.access_key}/{now[:8]}/{signer._region_name}/{signer._service_name}/aws4_request"
        request.headers["Authorization"] = f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host;x-amz-date, Signature={'0' * 64}"

    patches = [
        mock.patch.object(CrtSigV4Auth, "add_auth", placeholder_signature),
        mock.patch.object(CrtS3SigV4Auth, "add_auth", placeholder_signature),
        mock.patch.object(UserAgentString, "rebuild_and_replace_user_agent_handler", lambda *args, **kwargs: None),
        mock.patch.object(responses, "method_names_from_class", method_names),
    ]
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield
