<?php

namespace Tidings\Laravel\Tests;

use Illuminate\Config\Repository;
use Illuminate\Container\Container;
use Illuminate\Database\Capsule\Manager;
use Illuminate\Foundation\Application;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\Facade;
use PHPUnit\Framework\TestCase as Base;
use Tidings\Laravel\Tidings;
use Tidings\Laravel\TidingsServiceProvider;

/**
 * A small Laravel application (the framework's own Application and service providers, as an
 * app's bootstrap registers them), configured from the environment like an app's .env.
 */
abstract class TestCase extends Base
{
    /** @var Application */
    protected $app;

    protected function setUp(): void
    {
        foreach (['TIDINGS_URL', 'TIDINGS_PUBLISHER_KEY', 'TIDINGS_SECRET'] as $name) {
            if (getenv($name) === false) {
                $this->fail("{$name} is not set: run this suite from tests/integrations/test_laravel.py");
            }
        }
        $base = sys_get_temp_dir() . '/tidings-laravel-' . getmypid();
        @mkdir($base . '/views', 0777, true);
        $app = new Application($base);
        $app->instance('config', new Repository([
            'app' => ['name' => 'tidings-test', 'env' => 'testing', 'debug' => true, 'locale' => 'en'],
            'database' => [
                'default' => 'sqlite',
                'connections' => ['sqlite' => ['driver' => 'sqlite', 'database' => ':memory:', 'prefix' => '']],
            ],
            'view' => ['paths' => [], 'compiled' => $base . '/views'],
            'tidings' => ['middleware' => []],
        ]));
        $app->instance('request', Request::create('http://app.test/'));
        foreach ([
            \Illuminate\Filesystem\FilesystemServiceProvider::class,
            \Illuminate\View\ViewServiceProvider::class,
            \Illuminate\Database\DatabaseServiceProvider::class,
            \Illuminate\Bus\BusServiceProvider::class,
            \Illuminate\Notifications\NotificationServiceProvider::class,
            TidingsServiceProvider::class,
        ] as $provider) {
            $app->register($provider);
        }
        Container::setInstance($app);
        Facade::clearResolvedInstances();
        Facade::setFacadeApplication($app);
        $app->boot();
        // The alias composer.json's extra.laravel declares (Laravel's package discovery adds it).
        if (! class_exists('Tidings', false)) {
            class_alias(\Tidings\Laravel\Facades\Tidings::class, 'Tidings');
        }
        $this->app = $app;
    }

    protected function tidings(): Tidings
    {
        return $this->app->make(Tidings::class);
    }

    /** What tidings lists for a user, read with a token from the facade. */
    protected function listed(string $userId): array
    {
        $http = new \GuzzleHttp\Client(['timeout' => 10]);
        $response = $http->get(rtrim(getenv('TIDINGS_URL'), '/') . '/notifications', [
            'headers' => ['Authorization' => 'Bearer ' . $this->tidings()->token($userId)],
        ]);
        $this->assertSame(200, $response->getStatusCode());

        return json_decode((string) $response->getBody(), true);
    }
}
