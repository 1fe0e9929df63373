"""A custom user model unlike Django's: UUID keys, email as the username, no is_staff."""

import uuid

from django.contrib.auth.models import (
    AbstractBaseUser,
    BaseUserManager,
    PermissionsMixin,
)
from django.db import models


class MemberManager(BaseUserManager):
    def create_user(self, email, password=None):
        member = self.model(email=self.normalize_email(email))
        member.set_password(password)
        member.save(using=self._db)
        return member


class Member(AbstractBaseUser, PermissionsMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    is_active = models.BooleanField(default=True)

    objects = MemberManager()
    USERNAME_FIELD = "email"

    def __str__(self):
        return self.email
