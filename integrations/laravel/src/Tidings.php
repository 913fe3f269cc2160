<?php

namespace Tidings\Laravel;

use GuzzleHttp\Client as Http;
use GuzzleHttp\Exception\ConnectException;
use GuzzleHttp\Exception\RequestException;
use GuzzleHttp\Exception\TransferException;
use Psr\Http\Message\ResponseInterface;

/**
 * The publisher side of tidings: publish notifications, get user tokens.
 *
 * A publish is retried on network errors and on 503 only, never on another answer, and every
 * attempt carries the same idempotency key (generated when none is given): a request stored
 * before its answer was lost is stored once. Other answers raise TidingsException.
 */
class Tidings
{
    /** @var string */
    private $url;

    /** @var string */
    private $publisherKey;

    /** @var string|null */
    private $secret;

    /** @var int */
    private $retries;

    /** @var Http */
    private $http;

    /** @var callable(int): void */
    private $sleep;

    public function __construct(
        string $url,
        string $publisherKey,
        ?string $secret = null,
        float $timeout = 2.0,
        int $retries = 2,
        ?Http $http = null,
        float $connectTimeout = 1.0
    ) {
        // "https://tidings.example/" and "https://tidings.example" name the same server.
        $this->url = rtrim($url, '/');
        $this->publisherKey = $publisherKey;
        $this->secret = $secret === '' ? null : $secret;
        $this->retries = $retries;
        // Both bounded, so a publish that cannot get through costs at most
        // (retries + 1) × timeout plus the backoff, never the PHP default of minutes.
        $this->http = $http ?? new Http(['timeout' => $timeout, 'connect_timeout' => min($connectTimeout, $timeout)]);
        $this->sleep = static function (int $attempt): void {
            usleep((int) (min(5.0, 0.25 * 2 ** $attempt) * mt_rand(500, 1000) * 1000));
        };
    }

    public function url(): string
    {
        return $this->url;
    }

    /** Whether token() signs with the secret here (no request to tidings). */
    public function signsLocally(): bool
    {
        return $this->secret !== null;
    }

    /**
     * Hand a failure to the app's exception handler (its log, Sentry, …) without raising it.
     *
     * @param  \Illuminate\Contracts\Container\Container  $app
     */
    public static function report($app, \Throwable $exc): void
    {
        $handler = 'Illuminate\Contracts\Debug\ExceptionHandler';
        if ($app->bound($handler)) {
            $app->make($handler)->report($exc);
        } else {
            error_log('tidings: ' . $exc->getMessage());
        }
    }

    /**
     * Store a notification for one user; returns it as stored (`id` is the user's seq).
     *
     * @param  string|int  $userId
     * @param  array<string, mixed>  $fields  link, kind, data, idempotency_key, …
     * @return array<string, mixed>
     */
    public function publish($userId, string $message, array $fields = []): array
    {
        return $this->send(['user_id' => (string) $userId], $message, $fields);
    }

    /**
     * The same notification for each of several users, in one request.
     *
     * @param  array<int, string|int>  $userIds
     * @param  array<string, mixed>  $fields
     * @return array<int, array<string, mixed>>
     */
    public function publishMany(array $userIds, string $message, array $fields = []): array
    {
        $ids = array_map('strval', array_values($userIds));

        return $this->send(['user_ids' => $ids], $message, $fields);
    }

    /**
     * A user token for the bell: signed here with the secret, or minted by tidings without one.
     *
     * @param  string|int  $userId
     */
    public function token($userId, int $ttl = 3600): string
    {
        if ($this->secret !== null) {
            return self::mintToken($this->secret, (string) $userId, $ttl);
        }

        return (string) $this->post('/api/tokens', ['user_id' => (string) $userId, 'ttl' => $ttl])['token'];
    }

    /**
     * An HS256 JWT with `sub`, `iat` and `exp`, as tidings checks it (no JWT library needed).
     * `iat` lets the bell renew at a share of the lifetime, whatever the clocks say.
     */
    public static function mintToken(string $secret, string $userId, int $ttl = 3600): string
    {
        $encode = static function (string $raw): string {
            return rtrim(strtr(base64_encode($raw), '+/', '-_'), '=');
        };
        $header = $encode(json_encode(['alg' => 'HS256', 'typ' => 'JWT']));
        $claims = $encode(json_encode(['sub' => $userId, 'iat' => $now = time(), 'exp' => $now + $ttl]));
        $signature = $encode(hash_hmac('sha256', "{$header}.{$claims}", $secret, true));

        return "{$header}.{$claims}.{$signature}";
    }

    /** For tests: how to wait before retry number $attempt (0-based). */
    public function setSleep(callable $sleep): void
    {
        $this->sleep = $sleep;
    }

    /**
     * @param  array<string, mixed>  $target
     * @param  array<string, mixed>  $fields
     * @return array<mixed>
     */
    private function send(array $target, string $message, array $fields): array
    {
        // Absent, not null: a server that predates a field accepts a publish without it.
        $body = $target + ['message' => $message] + array_filter($fields, static function ($value) {
            return $value !== null;
        });
        // Fixed before the first attempt, so every retry carries the same key.
        $body['idempotency_key'] = (string) ($body['idempotency_key'] ?? bin2hex(random_bytes(16)));

        return $this->post('/api/notifications', $body);
    }

    /**
     * @param  array<string, mixed>  $body
     * @return array<mixed>
     */
    private function post(string $path, array $body): array
    {
        $attempt = 0;
        while (true) {
            try {
                $response = $this->http->request('POST', $this->url . $path, [
                    'json' => $body,
                    'headers' => [
                        'Authorization' => 'Bearer ' . $this->publisherKey,
                        'Accept' => 'application/json',
                    ],
                    'http_errors' => false,
                ]);
            } catch (TransferException $exc) {
                // A network error: no answer at all (refused, reset, timed out, cut short).
                $network = $exc instanceof ConnectException
                    || ($exc instanceof RequestException && ! $exc->hasResponse());
                if (! $network) {
                    throw $exc;
                }
                if ($attempt >= $this->retries) {
                    throw new TidingsException(null, 'network_error', $exc->getMessage(), $exc);
                }
                ($this->sleep)($attempt++);
                continue;
            }
            if ($response->getStatusCode() === 503 && $attempt < $this->retries) {
                ($this->sleep)($attempt++);
                continue;
            }

            return $this->answer($response);
        }
    }

    /** @return array<mixed> */
    private function answer(ResponseInterface $response): array
    {
        $status = $response->getStatusCode();
        $text = (string) $response->getBody();
        $json = json_decode($text, true);
        if ($status >= 200 && $status < 300 && is_array($json)) {
            return $json;
        }
        if (is_array($json) && isset($json['error'])) {
            throw new TidingsException($status, (string) $json['error'], $json['detail'] ?? null);
        }

        throw new TidingsException($status, 'http_error', substr($text, 0, 500));
    }
}
