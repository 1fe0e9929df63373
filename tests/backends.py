"""An authentication backend with object permissions, as django-guardian-like backends provide."""

SHARED_PREFIX = "shared-"


class SharedGroupsBackend:
    """Grants auth.view_group on groups named "shared-...", on the object only, to active users."""

    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user_obj, perm, obj=None):
        return (
            obj is not None
            and user_obj.is_active
            and perm == "auth.view_group"
            and obj._meta.label_lower == "auth.group"
            and obj.name.startswith(SHARED_PREFIX)
        )
