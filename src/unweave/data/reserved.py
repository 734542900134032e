"""Material reserved for independent evaluation: never downloaded, trained or validated on.

Mirrors ``shared/docs/DATA.md`` (section "Reserved") and ``freedoom-reserved.txt`` so that the
corpus builders enforce it without access to those documents.
"""

from __future__ import annotations

from ..errors import UnweaveError

RESERVED_PACKAGES = frozenset({
    "fillets-ng-data-nl", "fillets-ng-data", "klettres-data", "hedgewars-data",
    "wesnoth-1.16-data", "fretsonfire-songs-muldjord", "fretsonfire-songs-sectoid",
    "avldrums.lv2-soundfont", "timgm6mb-soundfont", "fluid-soundfont-gm",
})
# Only these asterisk languages may be used; every other asterisk-core-sounds-* is reserved.
ASTERISK_ALLOWED = frozenset({"en", "es", "it", "ru"})

# Freedoom music lumps reserved for evaluation, by sha256 of the lump bytes (any lump name).
RESERVED_FREEDOOM_SHA256 = {
    "7c3f0d5036b848e7c99149fe1f56c2034e61f4a383a411d5279b2d55e10cd5be": "freedoom1.wad:D_E1M1",
    "9c04300d4c7ab4d4d1e26bf427c254dcf02166398e5425c62753e8ea54356354": "freedoom1.wad:D_E1M9",
    "61767ecd51b850ef9f282dfdde96108eb75ef35416b68be026283d3347a16a77": "freedoom1.wad:D_E2M7",
    "a0c96fb09a4a074c5079d0e54fefc028d621df35238b6c01e7b4b949f1321070": "freedoom1.wad:D_E3M2",
    "1f6abf92a223fb153147a4bb345b2b94c2a6e7f2e98217fa22ea59ac603453bf": "freedoom1.wad:D_E3M3",
    "01fee021e308eda248fe235923dffd891674a57e147b2c1d20632cfe61a5de98": "freedoom1.wad:D_E3M5",
    "372f725d6fd89f94499a0f598558b9437d62c966d5b9d841aece5e9aae9fba63": "freedoom2.wad:D_COUNTD",
    "b3a3080878a574835388cc0a443f210f3052535c2ce8682bdf50719979738fbd": "freedoom2.wad:D_SHAWN",
    "4e75600beacb5d86bdcdd06054bfb8b8d1c49a458d26f94f4281b00b9802cb8d": "freedoom2.wad:D_DOOM2",
    "a2f150b3ed44d06238a8b4d27eda6414a87d6f9bf90b35c1ad4a270c7b5d1389": "freedoom2.wad:D_MESSAG",
    "d63d4caec74dafe0604d6b024789cf826cea5aaff43a15e0cb5c01172b9daf83": "freedoom2.wad:D_RUNNIN",
    "b6713685e5ca1455b8dd4673b401142a1ea9f0d9f950c43188b1249194b3c547": "freedoom2.wad:D_EVIL",
}
# Hydrogen kit that must not be used.
RESERVED_HYDROGEN_KITS = frozenset({"The Black Pearl"})


def check_package_allowed(package: str) -> None:
    """Raise UnweaveError if ``package`` is reserved for evaluation."""
    if package in RESERVED_PACKAGES:
        raise UnweaveError(f"{package}: package is reserved for evaluation and must not be used")
    if package.startswith("asterisk-core-sounds-"):
        language = package[len("asterisk-core-sounds-"):].split("-")[0]
        if language not in ASTERISK_ALLOWED:
            raise UnweaveError(f"{package}: asterisk language {language!r} is reserved")


def is_reserved_midi(sha256: str) -> bool:
    return sha256 in RESERVED_FREEDOOM_SHA256
