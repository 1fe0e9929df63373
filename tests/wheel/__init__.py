"""
Helpers of tests/test_wheel.py: the apps as a site gets them, from the built wheel.

- install.py: build the wheel from the checkout, install it into a virtualenv outside it;
- hostsite.py: a fresh `django-admin startproject` site configured by docs/integrate.md's
  blocks, its commands and its servers; site/ holds the site's own files (its user model,
  its `shop` app, its templates);
- web.py: a visitor of the site over real HTTP (cookies, CSRF tokens, forms).
"""
