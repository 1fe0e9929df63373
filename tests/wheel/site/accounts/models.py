"""The site's own user model, as Django's documentation recommends every new project to have."""

from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    pass
