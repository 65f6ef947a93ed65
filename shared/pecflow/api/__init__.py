"""The HTTP API people use (the web console talks only to it): Powertools' HTTP API resolver, one
router per resource, request and response models validated, the OpenAPI document generated from
the routes (`openapi.json` in the repository, and GET /openapi.json).

Who calls is known from the JWT the API Gateway authorizer (Cognito) checked: its username is
looked up among the people on every request, so a disabled person is refused at once, whatever
their token says. Every route checks the person's role on the mailbox in the services
(pecflow.domain.access): no role answers 404, as for a mailbox that does not exist.
"""

from pecflow.api.app import API_TITLE, Services, build_app

__all__ = ["API_TITLE", "Services", "build_app"]
