"""Load master data from a directory (`--master DIR`, design.md 2.4): products.csv and sites.csv.

Thin I/O: reading the two files; parsing and validation live in `operators.formats.master_csv`.
"""

from __future__ import annotations

from pathlib import Path

from operators.formats.master_csv import MasterDataError, parse_master
from operators.master import MasterData

PRODUCTS_FILE = "products.csv"
SITES_FILE = "sites.csv"

__all__ = ["PRODUCTS_FILE", "SITES_FILE", "MasterDataError", "load_master"]


def load_master(directory: Path) -> MasterData:
    """Read `directory/products.csv` and `directory/sites.csv` -> MasterData.

    Raises MasterDataError naming the path for a missing directory or file, a file that is not
    UTF-8 (a BOM is accepted: spreadsheet exports write one), or a malformed file.
    """
    if not directory.is_dir():
        raise MasterDataError(f"master data directory {directory} does not exist or is not a directory")
    products_path = directory / PRODUCTS_FILE
    sites_path = directory / SITES_FILE
    return parse_master(
        _read(products_path),
        _read(sites_path),
        products_name=str(products_path),
        sites_name=str(sites_path),
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MasterDataError(f"master data file {path} is missing") from None
    except UnicodeDecodeError as exc:
        raise MasterDataError(f"master data file {path} is not UTF-8: {exc}") from None
    except OSError as exc:
        raise MasterDataError(f"master data file {path} cannot be read: {exc}") from None
