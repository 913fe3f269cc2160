<?php

namespace Tidings\Laravel\View;

use Illuminate\Contracts\Container\Container;
use Illuminate\View\Component;
use Tidings\Laravel\Tidings;

/**
 * `<x-tidings-bell />`: the bell for the logged-in user, with a fresh token and the URL the bell
 * asks for the next one. Renders nothing for a guest. Other attributes (theme="dark", …) are
 * passed to the <tidings-bell> element.
 */
class Bell extends Component
{
    /** @var string */
    public $url;

    /** @var string|null */
    public $token;

    /** @var string|null */
    public $tokenUrl;

    /** @param  mixed  $user  the user to show the bell for; default: the logged-in user */
    public function __construct(Tidings $tidings, Container $app, $user = null, ?string $tokenUrl = null)
    {
        if ($user === null && $app->bound('auth')) {
            $user = $app->make('auth')->user();
        }
        $this->url = $tidings->url();
        $config = $app->bound('config') ? $app->make('config') : null;
        $ttl = (int) ($config ? $config->get('tidings.token_ttl', 900) : 900);
        $this->token = $user === null ? null : $tidings->token($user->getAuthIdentifier(), $ttl);
        if ($tokenUrl === null && $app->bound('router') && $app->make('router')->has('tidings.token')) {
            $tokenUrl = $app->make('url')->route('tidings.token', [], false);
        }
        $this->tokenUrl = $tokenUrl;
    }

    public function shouldRender()
    {
        return $this->token !== null;
    }

    public function render()
    {
        return view('tidings::bell');
    }
}
