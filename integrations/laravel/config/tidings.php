<?php

// config/tidings.php — publish it with `php artisan vendor:publish --tag=tidings-config`.
// The names match the tidings server's own .env, so one .env serves both (tidings accepts and
// ignores TIDINGS_URL, TIDINGS_PUBLISHER_KEY and TIDINGS_TOKEN_TTL, which are the app's side).
return [
    // Where tidings answers, as the app's server and the browser reach it (no trailing slash
    // needed; one is removed).
    'url' => env('TIDINGS_URL', 'http://127.0.0.1:8000'),

    // One of the server's TIDINGS_PUBLISHER_KEYS.
    'publisher_key' => env('TIDINGS_PUBLISHER_KEY'),

    // The server's TIDINGS_SECRET: user tokens are signed here, with no round trip. Leave it
    // empty to have tidings mint them (POST /api/tokens).
    'secret' => env('TIDINGS_SECRET'),

    // Lifetime of the token the bell starts with, in seconds; the bell asks for a new one.
    'token_ttl' => (int) env('TIDINGS_TOKEN_TTL', 900),

    // Seconds to connect, seconds per HTTP request, and how often a publish is retried (network
    // errors and 503 only, always with the same idempotency key). A publish that cannot get
    // through costs the request at most (retries + 1) × timeout plus under a second of backoff,
    // and is then reported, not raised (queue the notification to take it off the request).
    'connect_timeout' => 1,
    'timeout' => 2,
    'retries' => 2,

    // Whether the bell offers desktop notifications: true once tidings has a VAPID key and the
    // app registers the service worker (docs/away.md). false: the bell never asks for the key.
    'push' => false,

    // GET /tidings/token (route name tidings.token), the bell's refresh URL, with these
    // middleware (the session's, so it knows the user). false: register your own.
    'routes' => true,
    'middleware' => ['web'],
];
