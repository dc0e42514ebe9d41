"""(being built in issue 7)"""

from fastapi import APIRouter

router = APIRouter()
