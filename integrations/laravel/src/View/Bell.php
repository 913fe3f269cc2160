<?php

namespace Tidings\Laravel\View;

use Illuminate\Contracts\Container\Container;
use Illuminate\View\Component;
use InvalidArgumentException;
use Tidings\Laravel\Tidings;
use Tidings\Laravel\TidingsException;

/**
 * `<x-tidings-bell />`: the bell for the logged-in user, with a fresh token and the URL the bell
 * fetches the next one from (`token-url`: no inline script, so it works inside a Vue 2 or Vue 3
 * root and under a CSP without 'unsafe-inline'). Renders nothing for a guest. Other attributes
 * (theme="dark", …) are passed to the <tidings-bell> element.
 *
 * With `secret` configured the token is signed here (no request to tidings per page); without
 * one the page carries only the token URL and the bell fetches its first token itself, so a
 * tidings outage never turns a page render into an error.
 */
class Bell extends Component
{
    /** @var string */
    public $url;

    /** @var string|null */
    public $token;

    /** @var string|null */
    public $tokenUrl;

    /** @var string|null */
    public $nonce;

    /** @var bool */
    public $push;

    /** @var bool */
    private $show;

    /**
     * @param  mixed  $user  the user to show the bell for; default: the logged-in user. Another
     *                       user needs a `token-url` that mints for that user.
     * @param  string|null  $nonce  the CSP nonce for the script tag; default: Vite::cspNonce()
     */
    public function __construct(
        Tidings $tidings,
        Container $app,
        $user = null,
        ?string $tokenUrl = null,
        ?string $nonce = null,
        ?bool $push = null
    ) {
        $session = $app->bound('auth') ? $app->make('auth')->user() : null;
        if ($user !== null && $tokenUrl === null
            && ($session === null || (string) $session->getAuthIdentifier() !== (string) $user->getAuthIdentifier())) {
            // The route mints for the session's user: the bell would move to that user's stream
            // at its first renewal.
            throw new InvalidArgumentException(
                '<x-tidings-bell :user="…" /> for a user other than the logged-in one needs a token-url="…" '
                . 'that mints for that user: route tidings.token refreshes as the logged-in user'
            );
        }
        $user = $user ?? $session;
        $this->show = $user !== null;
        $this->url = $tidings->url();
        $config = $app->bound('config') ? $app->make('config') : null;
        $ttl = (int) ($config ? $config->get('tidings.token_ttl', 900) : 900);
        $this->push = $push ?? (bool) ($config ? $config->get('tidings.push', false) : false);
        if ($tokenUrl === null && $app->bound('router') && $app->make('router')->has('tidings.token')) {
            $tokenUrl = $app->make('url')->route('tidings.token', [], false);
        }
        $this->tokenUrl = $tokenUrl;
        $this->token = null;
        if ($user !== null && ($tidings->signsLocally() || $tokenUrl === null)) {
            try {
                $this->token = $tidings->token($user->getAuthIdentifier(), $ttl);
            } catch (TidingsException $exc) {
                // The page renders; the bell shows it is offline and recovers on its own.
                Tidings::report($app, $exc);
            }
        }
        $this->nonce = $nonce ?? self::viteNonce();
    }

    /** Laravel 10+: the nonce the app gave Vite::useCspNonce() for this request. */
    private static function viteNonce(): ?string
    {
        $vite = 'Illuminate\Support\Facades\Vite';
        if (class_exists($vite) && method_exists('Illuminate\Foundation\Vite', 'cspNonce')) {
            return $vite::cspNonce();
        }

        return null;
    }

    public function shouldRender()
    {
        return $this->show;
    }

    public function render()
    {
        return view('tidings::bell');
    }
}
