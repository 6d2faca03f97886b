"""`imgtool sign` and `imgtool verify`: cosign signatures (and the SBOM attestation) of images in a registry."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from toolkit import validate
from toolkit.cli.apps import app
from toolkit.cli.options import READABLE_FILE, JsonOpt, checked
from toolkit.cli.output import error, out, print_json


def _key_option(kind: str) -> typer.models.OptionInfo:
    def check(key: str) -> str:
        from toolkit.signing import check_key

        return check_key(validate.safe_words(key, "the key", 1000), kind)

    return typer.Option(
        "--key",
        help=f"cosign key ({kind}): a file from `cosign generate-key-pair`, or a KMS URI.",
        callback=checked(check),
    )


TlogOpt = Annotated[
    bool,
    typer.Option(
        "--tlog/--no-tlog",
        help="Use Sigstore's transparency log (cosign's default); --no-tlog: the key's signature alone, offline.",
    ),
]


@app.command(
    epilog="Examples: COSIGN_PASSWORD=... imgtool sign localhost:5000/app:granian --key cosign.key --no-tlog · "
    "imgtool sign REF --key cosign.key --sbom sbom.cdx.json"
)
def sign(
    image: Annotated[
        str,
        typer.Argument(
            help="Image in a registry (a tag is resolved to its digest first).",
            callback=checked(validate.image_reference),
        ),
    ],
    key: Annotated[str, _key_option("the private key, cosign.key")],
    sbom: Annotated[
        Path | None,
        typer.Option(
            "--sbom",
            help="Also attach this CycloneDX SBOM (from `imgtool build --sbom`), signed.",
            parser=READABLE_FILE,
        ),
    ] = None,
    tlog: TlogOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Sign an image in a registry by digest with cosign (the key's password from COSIGN_PASSWORD)."""
    from toolkit.signing import sign as cosign_sign

    signed = cosign_sign(image, key, sbom, tlog)
    if as_json:
        print_json(asdict(signed))
        return
    extra = " and its SBOM attestation" if signed.sbom_attached else ""
    log = "" if signed.tlog else " (no transparency log)"
    out.print(f"signed {signed.image}{extra}{log}", highlight=False, markup=False)


@app.command(
    epilog="Examples: imgtool verify localhost:5000/app:granian --key cosign.pub --no-tlog · "
    "imgtool verify REF --key cosign.pub --sbom --json"
)
def verify(
    image: Annotated[
        str, typer.Argument(help="Image in a registry, by tag or digest.", callback=checked(validate.image_reference))
    ],
    key: Annotated[str, _key_option("the public key, cosign.pub")],
    sbom: Annotated[
        bool, typer.Option("--sbom", help="Also require a CycloneDX SBOM attestation signed by the same key.")
    ] = False,
    tlog: TlogOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Check an image's cosign signature against a public key: exit 0 verified, 1 not."""
    from toolkit.signing import verify as cosign_verify

    result = cosign_verify(image, key, sbom, tlog)
    if as_json:
        print_json(asdict(result))
    elif result.verified:
        what = "signature and SBOM attestation" if result.sbom_verified else "signature"
        out.print(f"verified {result.image} ({what}, {result.digest})", highlight=False, markup=False)
    if not result.verified:
        error(f"{image} does not verify: {result.reason}")
        raise typer.Exit(1)
