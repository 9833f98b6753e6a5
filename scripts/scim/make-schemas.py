#!/usr/bin/env python3
"""Write the schema and resource-type files that scripts/scim/up.sh serves.

    make-schemas.py OUT_DIR [EXTENSION_SCHEMA_JSON]

scim2-server's --schema REPLACES its built-in schemas, so OUT_DIR/schemas.json
holds the built-in User, Group and EnterpriseUser schemas, taken from the
installed scim2-server package (run this with the venv's python), followed by
the NHS extension schema (default: nhs-extension-schema.json beside this
script).  OUT_DIR/resource-types.json is the built-in User and Group resource
types with the NHS extension declared (optional) on User next to
EnterpriseUser.
"""

import json
import os
import sys
from importlib import resources

SCHEMA_URN = "urn:ietf:params:scim:schemas:core:2.0:Schema"


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    out = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    ext_path = sys.argv[2] if len(sys.argv) == 3 else os.path.join(here, "nhs-extension-schema.json")
    with open(ext_path, encoding="utf-8") as f:
        ext = json.load(f)
    ext.setdefault("schemas", [SCHEMA_URN])

    pkg = resources.files("scim2_server") / "resources"
    schemas = json.loads((pkg / "default-schemas.json").read_text(encoding="utf-8"))
    rtypes = json.loads((pkg / "default-resource-types.json").read_text(encoding="utf-8"))

    ids = [s["id"] for s in schemas]
    for want in ("urn:ietf:params:scim:schemas:core:2.0:User",
                 "urn:ietf:params:scim:schemas:core:2.0:Group",
                 "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"):
        if want not in ids:
            sys.exit(f"make-schemas.py: built-in schema {want} not found in scim2_server")
    schemas = [s for s in schemas if s["id"] != ext["id"]] + [ext]

    user = next(rt for rt in rtypes if rt["id"] == "User")
    exts = [e for e in user.get("schemaExtensions", []) if e["schema"] != ext["id"]]
    exts.append({"schema": ext["id"], "required": False})
    user["schemaExtensions"] = exts

    os.makedirs(out, exist_ok=True)
    for name, data in (("schemas.json", schemas), ("resource-types.json", rtypes)):
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
    print(f"make-schemas.py: {len(schemas)} schemas, {len(rtypes)} resource types in {out}")


if __name__ == "__main__":
    main()
