<?php

namespace Tidings\Laravel;

use Illuminate\Notifications\ChannelManager;
use Illuminate\Support\ServiceProvider;
use Tidings\Laravel\Http\TokenController;
use Tidings\Laravel\View\Bell;

class TidingsServiceProvider extends ServiceProvider
{
    public function register()
    {
        $this->mergeConfigFrom(__DIR__ . '/../config/tidings.php', 'tidings');
        $this->app->singleton(Tidings::class, function ($app) {
            $config = $app->make('config')->get('tidings');

            return new Tidings(
                (string) $config['url'],
                (string) $config['publisher_key'],
                $config['secret'] ?? null,
                (float) ($config['timeout'] ?? 2),
                (int) ($config['retries'] ?? 2),
                null,
                (float) ($config['connect_timeout'] ?? 1)
            );
        });
        $extend = function (ChannelManager $channels) {
            $channels->extend('tidings', function ($app) {
                return new TidingsChannel($app->make(Tidings::class), $app);
            });
        };
        $this->app->afterResolving(ChannelManager::class, $extend);
        if ($this->app->resolved(ChannelManager::class)) {
            $extend($this->app->make(ChannelManager::class));
        }
    }

    public function boot()
    {
        $this->publishes([__DIR__ . '/../config/tidings.php' => $this->app->configPath('tidings.php')], 'tidings-config');
        $this->loadViewsFrom(__DIR__ . '/../resources/views', 'tidings');
        if ($this->app->bound('blade.compiler')) {
            $this->app->make('blade.compiler')->component(Bell::class, 'tidings-bell');
        }
        if ($this->app->bound('router') && $this->app->make('config')->get('tidings.routes', true)) {
            $router = $this->app->make('router');
            $router->middleware($this->app->make('config')->get('tidings.middleware', ['web']))
                ->get('tidings/token', TokenController::class)
                ->name('tidings.token');
            // A name given after the route was added is found once the lookups are rebuilt.
            $router->getRoutes()->refreshNameLookups();
        }
    }
}
