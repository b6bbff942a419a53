"""Give every party of a signed directory its credentials and rights on a local secured cluster.

Shared by ``kafka up --secure --directory`` and ``demo --secure``: each member's
client certificate is issued by the cluster's own CA (its CN is the member id,
which is the ACLs' principal), then the ACLs the directory implies are set and
stale ones removed, keeping the admin's.
"""

from __future__ import annotations

from consent import Directory
from fedbroker._acl_apply import apply_acls
from fedbroker._acls import AclNames, derive_acls
from fedbroker._localkafka import KafkaCluster
from fedbroker._tls import ADMIN_PRINCIPAL

__all__ = ["provision"]


def provision(cluster: KafkaCluster, loaded: Directory, names: AclNames) -> int:
    """Issue every party's credentials and set the directory's ACLs; return the party count."""
    desired = derive_acls(loaded, names)  # first: it refuses a super user's name as an id
    for member_id in loaded.members:
        cluster.credentials(member_id)
    apply_acls(cluster.bootstrap, cluster.security(), desired, keep=[f"User:{ADMIN_PRINCIPAL}"])
    return len(loaded.members)
