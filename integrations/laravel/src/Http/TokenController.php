<?php

namespace Tidings\Laravel\Http;

use Illuminate\Http\JsonResponse;
use Illuminate\Http\Request;
use Tidings\Laravel\Tidings;
use Tidings\Laravel\TidingsException;

/**
 * GET /tidings/token: a fresh token for the logged-in user; 401 JSON for a guest (never a
 * redirect to the login page: the bell reads 401 as "the session has ended").
 */
class TokenController
{
    public function __invoke(Request $request, Tidings $tidings): JsonResponse
    {
        $user = $request->user();
        if ($user === null) {
            return new JsonResponse(['error' => 'unauthorized', 'detail' => 'not logged in'], 401);
        }
        $ttl = (int) config('tidings.token_ttl', 900);
        try {
            $token = $tidings->token($user->getAuthIdentifier(), $ttl);
        } catch (TidingsException $exc) {
            // Without the secret tidings mints the token: when it is down the bell retries later.
            Tidings::report(app(), $exc);

            return new JsonResponse(['error' => 'unavailable', 'detail' => 'tidings did not answer'], 503, ['Cache-Control' => 'no-store']);
        }

        return new JsonResponse(['token' => $token], 200, ['Cache-Control' => 'no-store']);
    }
}
