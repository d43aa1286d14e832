"""Real cases for every built-in pattern label: positives, near misses and disguises.

Every case runs twice, as a whole text (``Guard.check``) and one character at a time
through the async guard (``Guard.run``); both must release the same text and report the
same findings. Positives pin the exact released text and the exact set of
``(label, matched source text)``; near misses must come out unchanged with no finding.

Secret-shaped fixtures below are fake and assembled from pieces, so that secret scanners
do not flag this file.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from guardstream import Guard, Outcome, Released, Retracted
from guardstream.detectors.patterns import BUILTIN_LABELS, PatternDetector, PatternSpec, RegionSpec, builtin_specs
from guardstream.detectors.validators import IBAN_LENGTHS, luhn, mod97
from tests.helpers import CHUNKINGS, released_for, split

GUARD = Guard.load("patterns")

EMAIL = "EMAIL_ADDRESS"
PHONE = "PHONE_NUMBER"
CARD = "CREDIT_CARD"
SSN = "US_SSN"
IBAN = "IBAN_CODE"
IP = "IP_ADDRESS"
AWS = "AWS_ACCESS_KEY"
GITHUB = "GITHUB_TOKEN"
SLACK = "SLACK_TOKEN"
JWT = "JWT"
API = "API_KEY"
PEM = "PRIVATE_KEY"

# --------------------------------------------------------------------------- fixtures

GHP = "gh" + "p_" + "0Lr8ACrysI4mdf8Kwcbx1kPEzuAlj4D8JocS"
GHO = "gh" + "o_" + "4Bwyti6WlQEEhQ1pKcjvUOyQlrQRXzkIgVBT"
GHS = "gh" + "s_" + "CJ7BShxdyZeZvmgpbNU3My2LHM12fpZMv4Ea"
GHU = "gh" + "u_" + "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d"
GHR = "gh" + "r_" + "KLzdocJ2isAjIhKtJ0RlNCc4DAVdSreYMzZO"
PAT = "github" + "_pat_" + "11NCc4DAVdSreYMzZOu8Nd_K5m7bYfGdCew7akw3GC3fNjXfKqJvdzrUCQ2ZYW8goUlFAFI1jRPrwbjg9E"

XOXB = "xo" + "xb-" + "2048204820-4096409640960-RNX5XRBW0ArfVkYqqBv4IoMs"
XOXP = "xo" + "xp-" + "2048204820-2048204820-4096409640-u8jzPde0IgxLd6GncfBAepfJ"
XOXA = "xo" + "xa-" + "2-2048204820-Bd0Kh8oOOL8dKLzdocJ2"
XOXE = "xo" + "xe-" + "1-My2LHM12fpZMv4EaCJ7BShxdyZeZ"
XOXS = "xo" + "xs-" + "4096409640-RNX5XRBW0ArfVkYqq"

_JWT_HEADER = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"  # {"alg":"HS256","typ":"JWT"}
_JWT_BODY = "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
TOKEN = _JWT_HEADER + "." + _JWT_BODY + "." + "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
# alg "none": the signature is empty, so the token itself ends with the dot.
TOKEN_NONE = "eyJhbGciOiJub25lIn0" + "." + "eyJzdWIiOiIxMjM0In0" + "."

STRIPE_TEST = "sk" + "_test_" + "4eC39HqLyjWDarjtT1zdp7dc"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfi" + "CYEXAMPLEKEY"  # AWS's documented example


def _pem(kind: str, body: str) -> str:
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"


RSA_KEY = _pem("RSA " + "PRIVATE KEY", "MIIEpAIBAAKCAQEAu1SU1LfVLPHC\nozMxH2Mo4lgOEePzNm0tRgeLezV6")
PKCS8_KEY = _pem("PRIVATE" + " KEY", "MIIEvQIBADANBgkqhkiG9w0BAQEF")
OPENSSH_KEY = _pem("OPENSSH " + "PRIVATE KEY", "b3BlbnNzaC1rZXktdjEAAAAABG5v")
ENCRYPTED_KEY = _pem("ENCRYPTED " + "PRIVATE KEY", "MIIFHDBOBgkqhkiG9w0BBQ0wQTAp")
PGP_KEY = _pem("PGP " + "PRIVATE KEY BLOCK", "\nlQOYBF0ZDGkBCADH\n=k3Xq")
EC_KEY = _pem("EC " + "PRIVATE KEY", "MHcCAQEEIBkg4LVWM9nuwNSk")


def pos(case_id: str, text: str, released: str, *found: tuple[str, str]) -> Any:
    """A positive: ``text`` must be released as ``released`` with exactly ``found``."""
    return pytest.param(text, released, frozenset(found), id=case_id)


def miss(case_id: str, text: str) -> Any:
    """A near miss: ``text`` must be released unchanged, with no finding."""
    return pytest.param(text, id=case_id)


# --------------------------------------------------------------------------- positives

POSITIVES: dict[str, list[Any]] = {
    EMAIL: [
        pos(
            "email-end-of-sentence",
            "Send the invoice to ann.lee@example.com.",
            "Send the invoice to <EMAIL_ADDRESS>.",
            (EMAIL, "ann.lee@example.com"),
        ),
        pos(
            "email-start-plus-tag-subdomains",
            "bob_smith+news@mail.example.co.uk is on the list.",
            "<EMAIL_ADDRESS> is on the list.",
            (EMAIL, "bob_smith+news@mail.example.co.uk"),
        ),
        pos(
            "email-in-parentheses",
            "Ask support (help-desk@acme-corp.io), they answer fast.",
            "Ask support (<EMAIL_ADDRESS>), they answer fast.",
            (EMAIL, "help-desk@acme-corp.io"),
        ),
        pos(
            "email-angle-brackets-then-newline",
            "From: Jane Doe <jane.doe@example.org>\nSubject: hi",
            "From: Jane Doe <<EMAIL_ADDRESS>>\nSubject: hi",
            (EMAIL, "jane.doe@example.org"),
        ),
        pos(
            "email-comma-separated-list",
            "Invite alice@example.com, bob@example.net and carol@example.de today.",
            "Invite <EMAIL_ADDRESS>, <EMAIL_ADDRESS> and <EMAIL_ADDRESS> today.",
            (EMAIL, "alice@example.com"),
            (EMAIL, "bob@example.net"),
            (EMAIL, "carol@example.de"),
        ),
        pos(
            "email-on-its-own-line",
            "Owner:\nops-team@example.com\nTeam: infra",
            "Owner:\n<EMAIL_ADDRESS>\nTeam: infra",
            (EMAIL, "ops-team@example.com"),
        ),
        pos(
            "email-mailto-link",
            'Click <a href="mailto:sales@example.com">here</a>.',
            'Click <a href="mailto:<EMAIL_ADDRESS>">here</a>.',
            (EMAIL, "sales@example.com"),
        ),
        pos(
            "email-then-colon-and-space",
            "Write to ann@example.com: she replies within a day.",
            "Write to <EMAIL_ADDRESS>: she replies within a day.",
            (EMAIL, "ann@example.com"),
        ),
        pos(
            "email-numeric-domain-label",
            "My old address j.smith1984@163.com, now closed.",
            "My old address <EMAIL_ADDRESS>, now closed.",
            (EMAIL, "j.smith1984@163.com"),
        ),
        pos(
            "email-japanese-no-spaces",
            "連絡はann@example.comまで。",
            "連絡は<EMAIL_ADDRESS>まで。",
            (EMAIL, "ann@example.com"),
        ),
    ],
    PHONE: [
        pos(
            "phone-us-parentheses-comma",
            "Call us at (555) 123-4567, Monday to Friday.",
            "Call us at <PHONE_NUMBER>, Monday to Friday.",
            (PHONE, "(555) 123-4567"),
        ),
        pos(
            "phone-us-dashes-at-start",
            "555-123-4567 is the front desk.",
            "<PHONE_NUMBER> is the front desk.",
            (PHONE, "555-123-4567"),
        ),
        pos(
            "phone-us-dots-in-parentheses",
            "Fax it (fax: 555.987.6543) today.",
            "Fax it (fax: <PHONE_NUMBER>) today.",
            (PHONE, "555.987.6543"),
        ),
        pos(
            "phone-us-plus1-spaces-at-end",
            "Reach the on-call engineer on +1 212 555 0143.",
            "Reach the on-call engineer on <PHONE_NUMBER>.",
            (PHONE, "+1 212 555 0143"),
        ),
        pos(
            "phone-us-1-and-001-prefixes",
            "Dial 1-800-555-0199 for billing, or 001-212-555-0143 from abroad.",
            "Dial <PHONE_NUMBER> for billing, or <PHONE_NUMBER> from abroad.",
            (PHONE, "1-800-555-0199"),
            (PHONE, "001-212-555-0143"),
        ),
        pos(
            "phone-us-extension-then-newline",
            "Phone: 202-555-0143 ext. 12\nHours: 9-5",
            "Phone: <PHONE_NUMBER>\nHours: 9-5",
            (PHONE, "202-555-0143 ext. 12"),
        ),
        pos(
            "phone-e164-uk-grouped",
            "Our London office: +44 20 7946 0958.",
            "Our London office: <PHONE_NUMBER>.",
            (PHONE, "+44 20 7946 0958"),
        ),
        pos(
            "phone-e164-compact",
            "Text +4915123456789 when you land.",
            "Text <PHONE_NUMBER> when you land.",
            (PHONE, "+4915123456789"),
        ),
        pos(
            "phone-e164-france-pairs-comma",
            "Paris: +33 1 23 45 67 89, ask for Marie.",
            "Paris: <PHONE_NUMBER>, ask for Marie.",
            (PHONE, "+33 1 23 45 67 89"),
        ),
        pos(
            "phone-e164-trunk-zero-in-parentheses",
            "Call +33 (0)1 23 45 67 89\nbefore noon",
            "Call <PHONE_NUMBER>\nbefore noon",
            (PHONE, "+33 (0)1 23 45 67 89"),
        ),
        pos(
            "phone-japanese-no-spaces",
            "電話番号は555-123-4567です。",
            "電話番号は<PHONE_NUMBER>です。",
            (PHONE, "555-123-4567"),
        ),
        pos(
            "phone-korean-particles",
            "전화번호는+82 2 312 3456입니다.",
            "전화번호는<PHONE_NUMBER>입니다.",
            (PHONE, "+82 2 312 3456"),
        ),
    ],
    CARD: [
        pos(
            "card-visa-spaced-comma",
            "Card: 4111 1111 1111 1111, exp 12/27.",
            "Card: <CREDIT_CARD>, exp 12/27.",
            (CARD, "4111 1111 1111 1111"),
        ),
        pos(
            "card-mastercard-dashed-at-start",
            "5500-0000-0000-0004 was declined.",
            "<CREDIT_CARD> was declined.",
            (CARD, "5500-0000-0000-0004"),
        ),
        pos(
            "card-amex-4-6-5-in-parentheses",
            "Use the corporate card (Amex 3782 822463 10005) for travel.",
            "Use the corporate card (Amex <CREDIT_CARD>) for travel.",
            (CARD, "3782 822463 10005"),
        ),
        pos(
            "card-plain-at-end",
            "Charge it to 4012888888881881.",
            "Charge it to <CREDIT_CARD>.",
            (CARD, "4012888888881881"),
        ),
        pos(
            "card-discover-own-line",
            "Discover:\n6011 1111 1111 1117\nThanks!",
            "Discover:\n<CREDIT_CARD>\nThanks!",
            (CARD, "6011 1111 1111 1117"),
        ),
        pos(
            "card-visa-13-digits",
            "An old Visa, 4222222222222, still validates.",
            "An old Visa, <CREDIT_CARD>, still validates.",
            (CARD, "4222222222222"),
        ),
        pos(
            "card-diners-4-6-4",
            "Diners: 3056 930902 5904.",
            "Diners: <CREDIT_CARD>.",
            (CARD, "3056 930902 5904"),
        ),
        pos(
            "card-unionpay-19-digits",
            "UnionPay 6221 2600 0000 0000 001 works too.",
            "UnionPay <CREDIT_CARD> works too.",
            (CARD, "6221 2600 0000 0000 001"),
        ),
        pos(
            "card-mastercard-2-series-in-parentheses",
            "(new range: 2221 0000 0000 0009)",
            "(new range: <CREDIT_CARD>)",
            (CARD, "2221 0000 0000 0009"),
        ),
        pos(
            "card-chinese-no-spaces",
            "卡号4111111111111111，谢谢。",
            "卡号<CREDIT_CARD>，谢谢。",
            (CARD, "4111111111111111"),
        ),
    ],
    SSN: [
        pos("ssn-end-of-sentence", "SSN: 536-22-8145.", "SSN: <US_SSN>.", (SSN, "536-22-8145")),
        pos(
            "ssn-at-start",
            "536-22-8145 belongs to the applicant.",
            "<US_SSN> belongs to the applicant.",
            (SSN, "536-22-8145"),
        ),
        pos(
            "ssn-spaces-in-parentheses",
            "(SSN 219 09 9999) is on file.",
            "(SSN <US_SSN>) is on file.",
            (SSN, "219 09 9999"),
        ),
        pos(
            "ssn-two-with-comma",
            "Hers is 078-05-1120, his is 123-45-6789.",
            "Hers is <US_SSN>, his is <US_SSN>.",
            (SSN, "078-05-1120"),
            (SSN, "123-45-6789"),
        ),
        pos(
            "ssn-space-separated-list",
            "Applicants: 123-45-6789 078-05-1120 772-18-3344\nEnd",
            "Applicants: <US_SSN> <US_SSN> <US_SSN>\nEnd",
            (SSN, "123-45-6789"),
            (SSN, "078-05-1120"),
            (SSN, "772-18-3344"),
        ),
        pos("ssn-assignment-semicolon", "ssn=412-55-9032;", "ssn=<US_SSN>;", (SSN, "412-55-9032")),
        pos(
            "ssn-own-line",
            "Social security number:\n601-44-2718\n",
            "Social security number:\n<US_SSN>\n",
            (SSN, "601-44-2718"),
        ),
    ],
    IBAN: [
        pos(
            "iban-gb-grouped-period",
            "IBAN: GB82 WEST 1234 5698 7654 32.",
            "IBAN: <IBAN_CODE>.",
            (IBAN, "GB82 WEST 1234 5698 7654 32"),
        ),
        pos(
            "iban-de-compact-at-start",
            "DE89370400440532013000 is the compact form.",
            "<IBAN_CODE> is the compact form.",
            (IBAN, "DE89370400440532013000"),
        ),
        pos(
            "iban-pl-followed-by-bic",
            "Pay to PL61 1090 1014 0000 0712 1981 2874 BIC: WBKPPLPP",
            "Pay to <IBAN_CODE> BIC: WBKPPLPP",
            (IBAN, "PL61 1090 1014 0000 0712 1981 2874"),
        ),
        pos(
            "iban-be-followed-by-currency",
            "Belgian account (BE68 5390 0754 7034 EUR), thanks.",
            "Belgian account (<IBAN_CODE> EUR), thanks.",
            (IBAN, "BE68 5390 0754 7034"),
        ),
        pos(
            "iban-fr-letters-inside-comma-newline",
            "Transfer to FR14 2004 1010 0505 0001 3M02 606,\nref INV-7",
            "Transfer to <IBAN_CODE>,\nref INV-7",
            (IBAN, "FR14 2004 1010 0505 0001 3M02 606"),
        ),
        pos(
            "iban-shortest-and-long",
            "Norway NO93 8601 1117 947; Malta MT84 MALT 0110 0001 2345 MTLC AST0 01S.",
            "Norway <IBAN_CODE>; Malta <IBAN_CODE>.",
            (IBAN, "NO93 8601 1117 947"),
            (IBAN, "MT84 MALT 0110 0001 2345 MTLC AST0 01S"),
        ),
        pos(
            "iban-ending-in-currency-letters",
            "Seychelles: SC18 SSCB 1101 0000 0000 0000 1497 USD",
            "Seychelles: <IBAN_CODE>",
            (IBAN, "SC18 SSCB 1101 0000 0000 0000 1497 USD"),
        ),
        pos(
            "iban-nl-compact-in-parentheses",
            "(NL91ABNA0417164300)",
            "(<IBAN_CODE>)",
            (IBAN, "NL91ABNA0417164300"),
        ),
        pos(
            "iban-japanese-no-spaces",
            "口座はDE89370400440532013000です。",
            "口座は<IBAN_CODE>です。",
            (IBAN, "DE89370400440532013000"),
        ),
    ],
    IP: [
        pos(
            "ip-v4-comma",
            "The server lives at 192.168.1.20, behind the VPN.",
            "The server lives at <IP_ADDRESS>, behind the VPN.",
            (IP, "192.168.1.20"),
        ),
        pos(
            "ip-v4-end-of-sentence",
            "Point the resolver to 10.0.0.255.",
            "Point the resolver to <IP_ADDRESS>.",
            (IP, "10.0.0.255"),
        ),
        pos("ip-v4-at-start", "8.8.8.8 is a public resolver.", "<IP_ADDRESS> is a public resolver.", (IP, "8.8.8.8")),
        pos(
            "ip-v4-with-port-in-parentheses",
            "Connect to (172.16.254.1:8080) for staging.",
            "Connect to (<IP_ADDRESS>:8080) for staging.",
            (IP, "172.16.254.1"),
        ),
        pos(
            "ip-v4-list-on-lines",
            "Hosts:\n10.1.2.3\n10.1.2.4\n",
            "Hosts:\n<IP_ADDRESS>\n<IP_ADDRESS>\n",
            (IP, "10.1.2.3"),
            (IP, "10.1.2.4"),
        ),
        pos(
            "ip-v6-compressed",
            "Allow 2001:db8:85a3::8a2e:370:7334 in the firewall.",
            "Allow <IP_ADDRESS> in the firewall.",
            (IP, "2001:db8:85a3::8a2e:370:7334"),
        ),
        pos(
            "ip-v6-zone-id-comma",
            "Link-local fe80::1ff:fe23:4567:890a%eth0, then retry.",
            "Link-local <IP_ADDRESS>, then retry.",
            (IP, "fe80::1ff:fe23:4567:890a%eth0"),
        ),
        pos(
            "ip-v6-in-url-brackets",
            "Open http://[2001:db8::1]:8080/ in a browser.",
            "Open http://[<IP_ADDRESS>]:8080/ in a browser.",
            (IP, "2001:db8::1"),
        ),
        # The IPv4 pattern also finds the embedded address, inside the same redaction.
        pos(
            "ip-v6-mapped-v4-then-newline",
            "Mapped ::ffff:192.0.2.128\nnext",
            "Mapped <IP_ADDRESS>\nnext",
            (IP, "::ffff:192.0.2.128"),
        ),
        pos("ip-v4-japanese-no-spaces", "IPは192.168.1.1です。", "IPは<IP_ADDRESS>です。", (IP, "192.168.1.1")),
    ],
    AWS: [
        pos(
            "aws-config-line-then-newline",
            "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\nregion = us-east-1",
            "aws_access_key_id = <AWS_ACCESS_KEY>\nregion = us-east-1",
            (AWS, "AKIAIOSFODNN7EXAMPLE"),
        ),
        pos(
            "aws-at-start",
            "AKIAIOSFODNN7EXAMPLE is the documented example key.",
            "<AWS_ACCESS_KEY> is the documented example key.",
            (AWS, "AKIAIOSFODNN7EXAMPLE"),
        ),
        pos(
            "aws-temporary-in-parentheses",
            "Temporary creds (ASIAY34FZKBOKMUTVV7A) expire soon.",
            "Temporary creds (<AWS_ACCESS_KEY>) expire soon.",
            (AWS, "ASIAY34FZKBOKMUTVV7A"),
        ),
        pos(
            "aws-env-assignment-at-end",
            "Set AWS_ACCESS_KEY_ID=AKIA2OGYBAH6ZQ3XEXMP.",
            "Set AWS_ACCESS_KEY_ID=<AWS_ACCESS_KEY>.",
            (AWS, "AKIA2OGYBAH6ZQ3XEXMP"),
        ),
        pos(
            "aws-two-keys-comma",
            "Old: AKIAZ7Q3M5N1P8R2T4V6, new: AKIA1234567890ABCDEF.",
            "Old: <AWS_ACCESS_KEY>, new: <AWS_ACCESS_KEY>.",
            (AWS, "AKIAZ7Q3M5N1P8R2T4V6"),
            (AWS, "AKIA1234567890ABCDEF"),
        ),
        pos(
            "aws-in-json",
            '{"AccessKeyId": "ASIA5XQ7W2E4R6T8Y0U1", "Expiration": "soon"}',
            '{"AccessKeyId": "<AWS_ACCESS_KEY>", "Expiration": "soon"}',
            (AWS, "ASIA5XQ7W2E4R6T8Y0U1"),
        ),
    ],
    GITHUB: [
        pos(
            "github-classic-in-parentheses",
            f"Use the token ({GHP}) for CI.",
            "Use the token (<GITHUB_TOKEN>) for CI.",
            (GITHUB, GHP),
        ),
        pos("github-oauth-at-start", f"{GHO} was revoked.", "<GITHUB_TOKEN> was revoked.", (GITHUB, GHO)),
        pos(
            "github-env-then-newline",
            f"GITHUB_TOKEN={GHS}\nRUNNER=linux",
            "GITHUB_TOKEN=<GITHUB_TOKEN>\nRUNNER=linux",
            (GITHUB, GHS),
        ),
        pos(
            "github-fine-grained-comma",
            f"PAT: {PAT}, scoped to one repo.",
            "PAT: <GITHUB_TOKEN>, scoped to one repo.",
            (GITHUB, PAT),
        ),
        pos(
            "github-user-and-refresh",
            f"{GHU} and {GHR}.",
            "<GITHUB_TOKEN> and <GITHUB_TOKEN>.",
            (GITHUB, GHU),
            (GITHUB, GHR),
        ),
        pos("github-quoted-yaml", f'token: "{GHP}"', 'token: "<GITHUB_TOKEN>"', (GITHUB, GHP)),
        # Was a near miss while a token had to be complete. A classic token's last six
        # characters are a checksum of the first thirty: all but one character is the secret.
        pos(
            "github-truncated-is-still-the-secret",
            "Token " + GHP[:-1] + " is truncated.",
            "Token <GITHUB_TOKEN> is truncated.",
            (GITHUB, GHP[:-1]),
        ),
        pos("github-at-end-of-stream", f"export GH_TOKEN={GHP}", "export GH_TOKEN=<GITHUB_TOKEN>", (GITHUB, GHP)),
        pos("github-pat-at-end-of-stream", f"PAT {PAT}", "PAT <GITHUB_TOKEN>", (GITHUB, PAT)),
        # A token ends at the first character that cannot belong to it.
        pos("github-classic-then-underscore", f"{GHP}_old", "<GITHUB_TOKEN>_old", (GITHUB, GHP)),
    ],
    SLACK: [
        pos("slack-bot-end-of-sentence", f"Bot token: {XOXB}.", "Bot token: <SLACK_TOKEN>.", (SLACK, XOXB)),
        pos("slack-user-at-start", f"{XOXP} belongs to a user.", "<SLACK_TOKEN> belongs to a user.", (SLACK, XOXP)),
        pos(
            "slack-env-then-newline",
            f"SLACK_TOKEN={XOXB}\nCHANNEL=#ops",
            "SLACK_TOKEN=<SLACK_TOKEN>\nCHANNEL=#ops",
            (SLACK, XOXB),
        ),
        pos("slack-app-in-parentheses", f"(app-level {XOXA})", "(app-level <SLACK_TOKEN>)", (SLACK, XOXA)),
        pos(
            "slack-quoted-argument-comma",
            f'client("{XOXE}", timeout=5)',
            'client("<SLACK_TOKEN>", timeout=5)',
            (SLACK, XOXE),
        ),
        pos(
            "slack-two-tokens",
            f"{XOXB}, {XOXS}",
            "<SLACK_TOKEN>, <SLACK_TOKEN>",
            (SLACK, XOXB),
            (SLACK, XOXS),
        ),
        pos("slack-at-end-of-stream", f"token={XOXP}", "token=<SLACK_TOKEN>", (SLACK, XOXP)),
    ],
    JWT: [
        pos(
            "jwt-bearer-then-newline",
            f"Authorization: Bearer {TOKEN}\nAccept: */*",
            "Authorization: Bearer <JWT>\nAccept: */*",
            (JWT, TOKEN),
        ),
        pos("jwt-at-start", f"{TOKEN} expires in an hour.", "<JWT> expires in an hour.", (JWT, TOKEN)),
        pos(
            "jwt-in-parentheses-comma",
            f"The cookie ({TOKEN}), once decoded, names the user.",
            "The cookie (<JWT>), once decoded, names the user.",
            (JWT, TOKEN),
        ),
        pos(
            "jwt-cookie-semicolon",
            f"Set-Cookie: session={TOKEN}; HttpOnly",
            "Set-Cookie: session=<JWT>; HttpOnly",
            (JWT, TOKEN),
        ),
        pos("jwt-end-of-sentence", f"Decode {TOKEN}.", "Decode <JWT>.", (JWT, TOKEN)),
        pos(
            "jwt-unsigned-keeps-its-final-dot",
            f"Unsigned {TOKEN_NONE} must be rejected.",
            "Unsigned <JWT> must be rejected.",
            (JWT, TOKEN_NONE),
        ),
        pos("jwt-at-end-of-stream", f"Bearer {TOKEN}", "Bearer <JWT>", (JWT, TOKEN)),
        pos("jwt-unsigned-at-end-of-stream", f"Bearer {TOKEN_NONE}", "Bearer <JWT>", (JWT, TOKEN_NONE)),
        # Two dots at most: a third ends the token.
        pos("jwt-then-ellipsis", f"See {TOKEN}...", "See <JWT>...", (JWT, TOKEN)),
    ],
    API: [
        pos(
            "api-key-query-string",
            "GET /v1/items?api_key=abc123def456&limit=10",
            "GET /v1/items?api_key=<API_KEY>&limit=10",
            (API, "abc123def456"),
        ),
        pos(
            "api-password-json",
            'config = {"password": "hunter2hunter2", "user": "ann"}',
            'config = {"password": "<API_KEY>", "user": "ann"}',
            (API, "hunter2hunter2"),
        ),
        pos(
            "api-password-python-single-quotes",
            "PASSWORD = 'S3cr3t!Passw0rd'\nDEBUG = False",
            "PASSWORD = '<API_KEY>'\nDEBUG = False",
            (API, "S3cr3t!Passw0rd"),
        ),
        pos(
            "api-aws-secret-env-export",
            f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET}",
            "export AWS_SECRET_ACCESS_KEY=<API_KEY>",
            (API, AWS_SECRET),
        ),
        pos(
            "api-dotenv-prefixed-name",
            "DB_PASSWORD=Tr0ub4dor3\nDB_USER=app",
            "DB_PASSWORD=<API_KEY>\nDB_USER=app",
            (API, "Tr0ub4dor3"),
        ),
        pos(
            "api-http-header",
            "X-Api-Key: 8f2c1e9a7b3d4f60\nAccept: json",
            "X-Api-Key: <API_KEY>\nAccept: json",
            (API, "8f2c1e9a7b3d4f60"),
        ),
        pos(
            "api-password-prose-with-digits",
            "Your new password: Summer2024! Please change it.",
            "Your new password: <API_KEY> Please change it.",
            (API, "Summer2024!"),
        ),
        pos(
            "api-yaml-value-then-period",
            "password: hunter2hunter2.",
            "password: <API_KEY>.",
            (API, "hunter2hunter2"),
        ),
        pos(
            "api-client-secret-yaml-quoted",
            "client_secret: 'gf8Kq2LmN0pR'\n",
            "client_secret: '<API_KEY>'\n",
            (API, "gf8Kq2LmN0pR"),
        ),
        pos(
            "api-letters-only-after-equals",
            "password=sunshine, then log in.",
            "password=<API_KEY>, then log in.",
            (API, "sunshine"),
        ),
        pos(
            "api-attribute-assignment-quoted",
            f'stripe.api_key = "{STRIPE_TEST}"',
            'stripe.api_key = "<API_KEY>"',
            (API, STRIPE_TEST),
        ),
        pos(
            "api-secret-in-parentheses",
            "Rotate it (secret=9f8e7d6c5b4a) now.",
            "Rotate it (secret=<API_KEY>) now.",
            (API, "9f8e7d6c5b4a"),
        ),
    ],
    PEM: [
        pos(
            "pem-rsa-between-lines",
            f"Here is the key:\n{RSA_KEY}\nKeep it safe.",
            "Here is the key:\n<PRIVATE_KEY>\nKeep it safe.",
            (PEM, RSA_KEY),
        ),
        pos("pem-pkcs8-at-start-period", f"{PKCS8_KEY}.", "<PRIVATE_KEY>.", (PEM, PKCS8_KEY)),
        pos(
            "pem-openssh-in-parentheses",
            f"({OPENSSH_KEY}), then chmod 600.",
            "(<PRIVATE_KEY>), then chmod 600.",
            (PEM, OPENSSH_KEY),
        ),
        pos(
            "pem-encrypted-then-newline",
            f"key.pem:\n{ENCRYPTED_KEY}\n",
            "key.pem:\n<PRIVATE_KEY>\n",
            (PEM, ENCRYPTED_KEY),
        ),
        pos("pem-pgp-block-comma", f"{PGP_KEY}, done", "<PRIVATE_KEY>, done", (PEM, PGP_KEY)),
        pos(
            "pem-two-blocks",
            f"A:\n{EC_KEY}\nB:\n{PKCS8_KEY}\n",
            "A:\n<PRIVATE_KEY>\nB:\n<PRIVATE_KEY>\n",
            (PEM, EC_KEY),
            (PEM, PKCS8_KEY),
        ),
        # No END line: everything from BEGIN to the end of the stream is the finding.
        pos(
            "pem-unterminated-redacts-to-the-end",
            "Key:\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk\nand the rest, 1.2.3.",
            "Key:\n<PRIVATE_KEY>",
            (PEM, "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk\nand the rest, 1.2.3."),
        ),
    ],
}

# --------------------------------------------------------------------------- near misses

NEAR_MISSES: dict[str, list[Any]] = {
    EMAIL: [
        miss("email-npm-versions", "Pin lodash@4.17.21 and react@18.2.0 in package.json."),
        miss("email-decorators-and-mentions", "Use @dataclass, not @property; ping @octocat for review."),
        miss("email-retina-assets", "Ship icon@2x.png and logo@3x.webp with the app."),
        miss("email-ssh-remote", "git clone git@github.com:acme/widgets.git"),
        miss("email-no-tld", "Mail user@localhost or admin@intranet on the VPN."),
        miss("email-one-letter-tld", "The form rejects a@b and foo@bar.c as invalid."),
        miss("email-at-as-price", "Buy 3 @ $4.50 each."),
        miss("email-spelled-out", "Write to ann at example dot com."),
    ],
    PHONE: [
        miss("phone-order-number", "Order #123-4567 ships Tuesday."),
        miss("phone-dates-and-time", "Due 2024-11-24 (11/24/2024) at 12:30:45."),
        miss("phone-versions", "Upgrade from 1.2.3 to v2.10.4."),
        miss("phone-short-plus-and-cpp", "Scores went +5, and C++ still compiles."),
        miss("phone-percent-and-price", "Revenue grew +15% to $1,234.56."),
        miss("phone-zip-plus-4", "Ship to Beverly Hills, CA 90210-1234."),
        miss("phone-too-many-digits", "Reference 123-456-78901 is closed."),
        miss("phone-signed-coordinates", "Meet at lat/lon +48.8566, +2.3522."),
        miss("phone-isbns", "ISBN 978-0-306-40615-7 or 0-306-40615-2."),
    ],
    CARD: [
        miss("card-luhn-failure", "Reference 4111 1111 1111 1112 is not a card."),
        # Luhn-valid, but no card number starts with 1: epoch milliseconds.
        miss("card-epoch-milliseconds", "created_at: 1732406400009 (ms)"),
        miss("card-all-zeros-pass-luhn", "Test pattern 0000 0000 0000 0000 passes Luhn."),
        # Luhn-valid and ISBN-valid: only Visa issues 13-digit cards.
        miss("card-isbn-13", "ISBN 9783064061569 is in the catalogue."),
        miss("card-head-of-dashed-run", "Serial 4111-1111-1111-1111-2222 is a device id."),
        miss("card-twelve-digits", "Invoice 411111111111 is paid."),
        miss("card-twenty-digits", "Tracking 41111111111111111111 arrives Friday."),
        miss("card-price-and-quantities", "Total $1,234.56 for 12 x 3 items."),
        miss("card-fullwidth-luhn-failure", "Ref ４１１１ １１１１ １１１１ １１１２ only."),
        # Luhn-valid digits inside an alphanumeric token.
        miss("card-inside-a-token", "Build FK49012345678901234 passed."),
    ],
    SSN: [
        miss("ssn-invalid-areas", "Invalid: 000-12-3456, 666-12-3456, 900-12-3456."),
        miss("ssn-group-00-and-serial-0000", "Also invalid: 123-00-6789 and 123-45-0000."),
        miss("ssn-mixed-separators", "Typo 123-45 6789 in the form."),
        miss("ssn-longer-runs", "Part 123-45-67890 and 1234-56-7890."),
        miss("ssn-order-and-zip", "Order #123-4567 to ZIP 90210-1234."),
        miss("ssn-dates", "From 2024-11-24 to 2024-12-01."),
        miss("ssn-inside-a-part-number", "Part AB123-45-6789 is in stock."),
    ],
    IBAN: [
        miss("iban-mod97-failure", "IBAN GB82 WEST 1234 5698 7654 33 bounced."),
        # Its account digits are Luhn-valid in a card's 4-4-4-2 grouping: still no card.
        miss("iban-mod97-failure-card-shaped", "IBAN GB05 QLOQ 4441 2427 8935 03 bounced."),
        # Passes mod-97, but a GB IBAN has 22 characters, not 20.
        miss("iban-wrong-length-for-country", "Ref GB04WEST123456987654 is short."),
        # Passes mod-97, but the US has no IBANs.
        miss("iban-country-without-iban", "Account US64SVBKUS6S3300958879 is domestic."),
        miss("iban-standards-and-codes", "Certified ISO 9001 and ISO 27001, see DE12 for details."),
        miss("iban-product-codes", "Parts AB12 CD34 EF56 GH78 and XY99Z."),
        miss("iban-inside-a-token", "Key XGB82WEST12345698765432 is a token."),
    ],
    IP: [
        miss("ip-prefixed-versions", "Release v1.2.3, then v2.10.4.1 and v1.2.3.4."),
        miss("ip-three-part-versions", "Python 3.12.1 and Node 20.11.0."),
        miss("ip-octet-out-of-range-and-five-parts", "Bad: 256.1.1.1 and 1.2.3.4.5"),
        miss("ip-times-and-mac", "At 12:30:45 the NIC 00:1A:2B:3C:4D:5E came up."),
        miss("ip-cpp-scopes", "Use std::vector, Foo::Bar and a::b::c."),
        miss("ip-hex-letter-cpp-scopes", "Abc::Def, A::B and cafe::babe are C++ names."),
        miss("ip-python-slices", "Reverse with s[::-1]; x[1::2] and a[::2] step."),
        miss("ip-hex-words", "The magic is deadbeef, not cafe."),
    ],
    AWS: [
        miss("aws-prefix-only", "Keys start with AKIA; AKIA123 is not one."),
        miss("aws-one-char-short", "AKIAIOSFODNN7EXAMPL is one character short."),
        miss("aws-one-char-long", "AKIAIOSFODNN7EXAMPLE1 is one too long."),
        miss("aws-lowercase", "akiaiosfodnn7example is not a key id."),
        miss("aws-mixed-case", "AKIAIOSFODNN7example has lowercase letters."),
        miss("aws-inside-a-word", "XAKIAIOSFODNN7EXAMPLE sits inside a word."),
    ],
    GITHUB: [
        miss("github-placeholder", "Set GITHUB_TOKEN to ghp_yourtokenhere."),
        # Lower-case placeholders: a real token's random characters hold a capital or a digit.
        miss("github-placeholder-xs", "Replace ghp_xxxxxxxxxxxxxxxxxxxx and github_pat_your_token_here."),
        miss("github-unknown-type", "Token ghx_" + GHP[4:] + " is unknown."),
        miss("github-inside-a-word", "Token x" + GHP + " is embedded."),
        miss("github-pat-too-short", "github_pat_abc123 is truncated."),
    ],
    SLACK: [
        miss("slack-prefix-alone", "Bot tokens start with xoxb; see the docs."),
        miss("slack-too-short", "xoxb-123 is truncated."),
        miss("slack-nine-characters", "xoxb-123456789 is one short of a token."),
        miss("slack-unknown-type", "xoxz-1234567890-abcdef is not a type."),
        miss("slack-inside-a-word", "fooxoxb-1234567890-abcdef is one word."),
        miss("slack-docs-ellipsis", "Tokens look like xoxb-... in the docs."),
    ],
    JWT: [
        miss("jwt-header-only", f"The header {_JWT_HEADER} alone is not a token."),
        miss("jwt-toy", "eyJ.eyJ.abc is a toy."),
        miss("jwt-second-part-not-json", f"{_JWT_HEADER}.cGF5bG9hZA.c2ln is opaque."),
        miss("jwt-inside-a-word", f"x{TOKEN} is embedded."),
        miss("jwt-prose", 'Tokens begin with eyJ because base64 of {" is eyJ.'),
    ],
    API: [
        miss("api-prose-no-assignment", "Choose a strong password and never share your api key."),
        miss("api-prose-colon", "Here's the secret: consistency beats intensity."),
        miss("api-form-label", "Password: required (at least eight characters)"),
        miss("api-env-lookup", 'api_key = os.environ["OPENAI_API_KEY"]'),
        miss("api-getenv-call", 'api_key=os.getenv("OPENAI_API_KEY")'),
        miss("api-constant-reference", "client = OpenAI(api_key=OPENAI_API_KEY)"),
        miss("api-getpass", "password = getpass.getpass()"),
        miss("api-variable", "login(user, password=user_password)"),
        miss("api-comparison", "if password == stored_password:"),
        miss("api-type-hints", "def login(username: str, password: str) -> bool:"),
        miss("api-too-short", "api_key=abc123 is only a sample."),
        miss("api-masked", "password: ******** (hidden)"),
    ],
    PEM: [
        miss("pem-public-key", _pem("PUBLIC KEY", "MFkwEwYHKoZIzj0CAQYIKoZIzj0D")),
        miss("pem-certificate", _pem("CERTIFICATE", "MIIBszCCAVmgAwIBAgIU")),
        miss("pem-pgp-public-block", _pem("PGP PUBLIC KEY BLOCK", "mQENBF0ZDGkBCADH")),
        miss("pem-prose", "Never paste your private key into a chat window."),
        miss("pem-no-dashes", "The header reads BEGIN RSA PRIVATE KEY without dashes."),
        miss("pem-end-line-only", "-----END PRIVATE KEY----- appears without a BEGIN line."),
    ],
}

# --------------------------------------------------------------------------- disguises

# Detection sees through full-width forms, zero-width characters and typographic dashes;
# what is released keeps every character outside a redaction exactly as it was sent.
OBFUSCATED: list[Any] = [
    pos(
        "fullwidth-card",
        "Card ４１１１ １１１１ １１１１ １１１１ ok",
        "Card <CREDIT_CARD> ok",
        (CARD, "４１１１ １１１１ １１１１ １１１１"),
    ),
    pos(
        "fullwidth-card-ideographic-spaces-and-punctuation",
        "Card：４１１１\u3000１１１１\u3000１１１１\u3000１１１１。",
        "Card：<CREDIT_CARD>。",
        (CARD, "４１１１\u3000１１１１\u3000１１１１\u3000１１１１"),
    ),
    pos(
        "arabic-indic-digits-card",
        "Card \u0664\u0661\u0661\u0661" + "\u0661" * 12 + " end",
        "Card <CREDIT_CARD> end",
        (CARD, "\u0664\u0661\u0661\u0661" + "\u0661" * 12),
    ),
    pos(
        "zero-width-spaces-in-card",
        "Pay with 4111\u200b1111\u200b1111\u200b1111 today.",
        "Pay with <CREDIT_CARD> today.",
        (CARD, "4111\u200b1111\u200b1111\u200b1111"),
    ),
    pos(
        "zero-width-spaces-in-email",
        "Mail ann\u200b@exam\u200bple.com, thanks.",
        "Mail <EMAIL_ADDRESS>, thanks.",
        (EMAIL, "ann\u200b@exam\u200bple.com"),
    ),
    pos(
        "zero-width-spaces-around-email-are-kept",
        "Mail \u200bann@example.com\u200b.",
        "Mail \u200b<EMAIL_ADDRESS>\u200b.",
        (EMAIL, "ann@example.com"),
    ),
    pos(
        "fullwidth-at-sign",
        "Mail ann\uff20example.com today.",
        "Mail <EMAIL_ADDRESS> today.",
        (EMAIL, "ann\uff20example.com"),
    ),
    pos(
        "zero-width-spaces-in-phone",
        "Call 555-\u200b123-\u200b4567.",
        "Call <PHONE_NUMBER>.",
        (PHONE, "555-\u200b123-\u200b4567"),
    ),
    pos(
        "non-breaking-hyphens-in-phone",
        "Call 555\u2011123\u20114567 now.",
        "Call <PHONE_NUMBER> now.",
        (PHONE, "555\u2011123\u20114567"),
    ),
    pos(
        "fullwidth-parentheses-in-phone",
        "Call \uff08555\uff09123-4567.",
        "Call <PHONE_NUMBER>.",
        (PHONE, "\uff08555\uff09123-4567"),
    ),
    pos("en-dashes-in-ssn", "SSN 536\u201322\u20138145.", "SSN <US_SSN>.", (SSN, "536\u201322\u20138145")),
    pos(
        "math-bold-digits-ssn",
        "SSN \U0001d7d3\U0001d7d1\U0001d7d4-\U0001d7d0\U0001d7d0-\U0001d7d6\U0001d7cf\U0001d7d2\U0001d7d3 on file",
        "SSN <US_SSN> on file",
        (SSN, "\U0001d7d3\U0001d7d1\U0001d7d4-\U0001d7d0\U0001d7d0-\U0001d7d6\U0001d7cf\U0001d7d2\U0001d7d3"),
    ),
    pos(
        "soft-hyphen-in-aws-key",
        "Key AKIA\u00adIOSFODNN7EXAMPLE here.",
        "Key <AWS_ACCESS_KEY> here.",
        (AWS, "AKIA\u00adIOSFODNN7EXAMPLE"),
    ),
    pos(
        "fullwidth-letters-in-aws-key",
        "Key \uff21\uff2b\uff29\uff21IOSFODNN7EXAMPLE here.",
        "Key <AWS_ACCESS_KEY> here.",
        (AWS, "\uff21\uff2b\uff29\uff21IOSFODNN7EXAMPLE"),
    ),
    pos(
        "zero-width-joiner-in-keyword",
        "pass\u200dword=hunter2hunter2\n",
        "pass\u200dword=<API_KEY>\n",
        (API, "hunter2hunter2"),
    ),
    pos(
        "zero-width-space-in-pem-header",
        "Key:\n-----BEGIN RSA PRIV\u200bATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\nok",
        "Key:\n<PRIVATE_KEY>\nok",
        (PEM, "-----BEGIN RSA PRIV\u200bATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"),
    ),
]

# --------------------------------------------------------------------------- limitations

# Known limitations, pinned as they are so that a change in either direction is noticed.
KNOWN_LIMITATIONS: list[Any] = [
    # A bare four-part version number is a syntactically valid IPv4 address (with a ``v``
    # prefix it is left alone: see the near misses).
    pos("ip-four-part-version", "Upgrade to 2.10.4.1 now.", "Upgrade to <IP_ADDRESS> now.", (IP, "2.10.4.1")),
    # The bare IPv6 loopback is not found: requiring two hex digits keeps ``x[1::2]`` out.
    pos("ip-v6-loopback-not-found", "Listen on ::1 only.", "Listen on ::1 only."),
    # A group of digits after an international number may belong to it: it is taken.
    pos(
        "phone-e164-takes-a-trailing-number",
        "Call +44 20 7946 0958 24 hours a day.",
        "Call <PHONE_NUMBER> hours a day.",
        (PHONE, "+44 20 7946 0958 24"),
    ),
    # A card written straight after an IBAN-shaped head reads as that IBAN's account part.
    pos("card-after-iban-shaped-head", "ref GB05 QLOQ 4111 1111 1111 1111 x", "ref GB05 QLOQ 4111 1111 1111 1111 x"),
    # After a colon a letters-only value reads as prose (``secret: consistency``).
    pos("api-letters-only-after-colon", "password: sunshine", "password: sunshine"),
    # A quoted placeholder is redacted like a secret (harmless, but not a secret).
    pos("api-quoted-placeholder", 'api_key="YOUR_API_KEY_HERE"', 'api_key="<API_KEY>"', (API, "YOUR_API_KEY_HERE")),
    # IBANs are matched in capitals only.
    pos("iban-lowercase", "iban gb82 west 1234 5698 7654 32", "iban gb82 west 1234 5698 7654 32"),
    # Nine digits with no separators are too ambiguous to call an SSN.
    pos("ssn-without-separators", "SSN 536228145 on file", "SSN 536228145 on file"),
    # UATP airline cards start with 1, which card numbers are otherwise refused.
    pos("card-uatp-starts-with-1", "UATP 135412345678911 card", "UATP 135412345678911 card"),
]

# --------------------------------------------------------------------------- helpers


async def _chars(text: str) -> AsyncIterator[str]:
    for char in text:
        yield char


def _found(outcome: Outcome, text: str) -> frozenset[tuple[str, str]]:
    """``(label, source text)`` per finding, touching findings of one label merged.

    A region (a private key, a token) is reported piece by piece as a stream arrives (each
    piece the moment it is seen), so merging is what makes a stream comparable with a whole
    text.
    """
    spans: dict[str, list[list[int]]] = {}
    for f in sorted(outcome.findings, key=lambda f: (f.label, f.start, f.end)):
        merged = spans.setdefault(f.label, [])
        if merged and f.start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], f.end)
        else:
            merged.append([f.start, f.end])
    return frozenset((label, text[a:b]) for label, pieces in spans.items() for a, b in pieces)


async def guard_both(text: str) -> Outcome:
    """Guard ``text`` whole and one character at a time; both must agree."""
    whole = GUARD.check(text)
    streamed = await GUARD.run(_chars(text))
    assert whole.kind == "completed"
    assert streamed.kind == "completed"
    assert streamed.released == whole.released, "one character at a time differs from the whole text"
    assert _found(streamed, text) == _found(whole, text)
    return whole


def _flat(table: dict[str, list[Any]]) -> list[Any]:
    return list(itertools.chain.from_iterable(table.values()))


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize(("text", "released", "found"), _flat(POSITIVES))
async def test_positive(text: str, released: str, found: frozenset[tuple[str, str]]) -> None:
    outcome = await guard_both(text)
    assert outcome.released == released
    assert _found(outcome, text) == found


@pytest.mark.parametrize("text", _flat(NEAR_MISSES))
async def test_near_miss_is_left_alone(text: str) -> None:
    outcome = await guard_both(text)
    assert outcome.released == text
    assert _found(outcome, text) == frozenset()


@pytest.mark.parametrize(("text", "released", "found"), OBFUSCATED)
async def test_disguised_entity_is_found_and_the_rest_kept(
    text: str, released: str, found: frozenset[tuple[str, str]]
) -> None:
    outcome = await guard_both(text)
    assert outcome.released == released
    assert _found(outcome, text) == found


@pytest.mark.parametrize(("text", "released", "found"), KNOWN_LIMITATIONS)
async def test_known_limitation(text: str, released: str, found: frozenset[tuple[str, str]]) -> None:
    outcome = await guard_both(text)
    assert outcome.released == released
    assert _found(outcome, text) == found


def test_every_label_has_its_cases() -> None:
    assert set(POSITIVES) == set(BUILTIN_LABELS)
    assert set(NEAR_MISSES) == set(BUILTIN_LABELS)
    for label in BUILTIN_LABELS:
        assert len(POSITIVES[label]) >= 6, label
        assert len(NEAR_MISSES[label]) >= 4, label
        for case in POSITIVES[label]:
            assert all(found_label == label for found_label, _ in case.values[2]), case.id


@pytest.mark.parametrize("spec", builtin_specs(), ids=lambda s: s.label)
def test_builtin_pattern_starts_with_a_lookbehind(spec: PatternSpec | RegionSpec) -> None:
    if isinstance(spec, RegionSpec) and spec.end is not None:
        assert spec.begin.startswith("-----BEGIN ")
    elif isinstance(spec, RegionSpec):
        assert spec.begin.startswith("(?<"), "a token must never begin inside a word"
    else:
        assert spec.pattern.startswith("(?<"), "a match must never begin inside a token"


# --------------------------------------------------------------------------- IBAN registry


def _iban(country: str, length: int) -> str:
    bban = ("0123456789" * 4)[: length - 4]
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


def _grouped(compact: str) -> str:
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


@pytest.mark.parametrize(("country", "length"), sorted(IBAN_LENGTHS.items()), ids=lambda v: str(v))
def test_iban_pattern_knows_each_country_length(country: str, length: int) -> None:
    value = _iban(country, length)
    assert mod97(value)
    for form in (value, _grouped(value)):
        text = f"Pay {form}, thanks."
        assert GUARD.check(text).released == "Pay <IBAN_CODE>, thanks."
    longer = _iban(country, length + 1)
    assert not mod97(longer)
    for form in (longer, _grouped(longer)):
        # (Its digits may still hold a Luhn-valid card number; that is not an IBAN.)
        assert IBAN not in {f.label for f in GUARD.check(f"Pay {form}, thanks.").findings}


# --------------------------------------------------------------------------- validators


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111 1111 1111 1111", True),
        ("４１１１ １１１１ １１１１ １１１１", True),
        ("\u0664\u0661\u0661\u0661" + "\u0661" * 12, True),
        ("4111 1111 1111 1112", False),
        ("411111111111", False),  # 12 digits
        ("4111111111111111" + "0000", False),  # 20 digits
    ],
)
def test_luhn_reads_any_decimal_digits(digits: str, valid: bool) -> None:
    assert luhn(digits) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("GB82 WEST 1234 5698 7654 32", True),
        ("gb82west12345698765432", True),
        ("GB82 WEST 1234 5698 7654 33", False),
        ("GB04WEST123456987654", False),  # mod-97 holds; GB IBANs have 22 characters
        ("XX71ABCD1234567890123", True),  # unregistered country: general rules only
    ],
)
def test_mod97_checks_the_country_length(value: str, valid: bool) -> None:
    assert mod97(value) is valid


# --------------------------------------------------------------------------- engine


def test_identical_findings_are_reported_once() -> None:
    outcome = GUARD.check("Call +1 212 555 0143 now.")
    assert outcome.released == "Call <PHONE_NUMBER> now."
    assert len(outcome.findings) == 1


async def test_streamed_private_key_is_one_finding() -> None:
    text = f"Key:\n{RSA_KEY}\nok"
    streamed = await GUARD.run(_chars(text))
    assert streamed.released == GUARD.check(text).released == "Key:\n<PRIVATE_KEY>\nok"
    assert len(streamed.findings) == 1


# --------------------------------------------------------------------------- token regions

# GitHub, Slack and JWT tokens are findings from their first character as soon as their
# prefix is unambiguous, and grow as they arrive: one redaction and one finding however
# the stream is cut, and a stall after the prefix shows none of the token.
TOKENS = [(GITHUB, GHP), (GITHUB, PAT), (SLACK, XOXB), (JWT, TOKEN), (JWT, TOKEN_NONE)]
# Where each prefix is complete (the end of the token's ``begin`` match).
PREFIX = {GHP: 12, PAT: 19, XOXB: 15, TOKEN: len(_JWT_HEADER) + 4, TOKEN_NONE: 23}


@pytest.mark.parametrize("chunking", sorted(CHUNKINGS))
@pytest.mark.parametrize(("label", "token"), TOKENS, ids=lambda v: v if v in BUILTIN_LABELS else v[:6])
@pytest.mark.parametrize("tail", ["", " and more.\n"], ids=["at-end", "then-text"])
async def test_token_is_one_redaction_however_chunked(label: str, token: str, chunking: str, tail: str) -> None:
    text = f"Use {token}{tail}"
    outcome = await released_for(GUARD, text, CHUNKINGS[chunking])
    assert outcome.kind == "completed"
    assert outcome.released == f"Use <{label}>{tail}" == GUARD.check(text).released
    assert [(f.label, text[f.start : f.end]) for f in outcome.findings] == [(label, token)]


@pytest.mark.parametrize(("label", "token"), TOKENS, ids=lambda v: v if v in BUILTIN_LABELS else v[:6])
def test_token_grows_with_every_character(label: str, token: str) -> None:
    """Each token character after the prefix is part of a finding the moment it arrives."""
    session = PatternDetector("patterns", builtin_specs([label])).open()
    text = f"Use {token}"
    covered: set[int] = set()
    for end in range(1, len(text) + 1):
        scan = session.scan(text[:end], 0, False)
        for f in scan.findings:
            assert f.label == label
            covered.update(range(f.start, f.end))
        if end >= 4 + PREFIX[token]:
            assert covered == set(range(4, end)), text[:end]
            assert scan.settled == end  # nothing held: the finding is the token so far
        else:
            assert not covered, text[:end]


def _budget_guard(max_hold_ms: float) -> Guard:
    return Guard.from_dict(
        {
            "budget": {"max_hold_ms": max_hold_ms, "max_hold_chars": None, "on_budget": "release"},
            "detectors": [{"type": "patterns"}],
        }
    )


@pytest.mark.parametrize(("label", "token"), TOKENS, ids=lambda v: v if v in BUILTIN_LABELS else v[:6])
def test_stall_after_the_prefix_shows_nothing_of_the_token(label: str, token: str) -> None:
    """A 50 ms budget; the prefix arrives within it, then the source stalls for 2 s."""
    window = _budget_guard(50).window()
    cut = 4 + PREFIX[token] + 2
    text = f"Use {token} now."
    events = []
    for i, chunk in enumerate(split(text[:cut], [3])):
        events += window.feed(chunk, 2.0 * i)
    events += window.tick(2000.0)
    before_rest = "".join(e.text for e in events if isinstance(e, Released))
    assert before_rest == f"Use <{label}>"
    for i, chunk in enumerate(split(text[cut:], [3])):
        events += window.feed(chunk, 2000.0 + 10.0 * i)
        events += window.tick(2000.0 + 10.0 * i + 60.0)
    events += window.finish(3000.0)
    assert "".join(e.text for e in events if isinstance(e, Released)) == f"Use <{label}> now."
    assert not [e for e in events if isinstance(e, Retracted)]


async def test_stall_after_the_prefix_in_real_time() -> None:
    async def source() -> AsyncIterator[str]:
        yield "Token: "
        yield GHP[:14]
        await asyncio.sleep(0.3)  # six times the budget
        for i in range(14, len(GHP), 4):
            yield GHP[i : i + 4]
        yield " ok"

    events = []
    async with _budget_guard(50).stream(source()) as stream:
        async for event in stream:
            events.append(event)
    assert stream.outcome.released == "Token: <GITHUB_TOKEN> ok"
    assert not [e for e in events if isinstance(e, Retracted)]
    assert len(stream.outcome.findings) == 1


def test_a_stall_before_the_prefix_is_complete_releases_it() -> None:
    """The price of a prefix: until it is complete, the budget may show what has come."""
    window = _budget_guard(50).window()
    events = window.feed("Use " + GHP[:8], 0.0) + window.tick(100.0)
    assert "".join(e.text for e in events if isinstance(e, Released)) == "Use " + GHP[:8]
